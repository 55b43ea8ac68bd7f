// Reconnect delays for broken streams: 1 s base, x1.5 per failure, capped at 30 s.
export const BASE_MS = 1000;
export const FACTOR = 1.5;
export const CAP_MS = 30000;

export function reconnectDelay(failures: number): number {
  if (failures <= 0) return 0;
  return Math.min(CAP_MS, BASE_MS * FACTOR ** (failures - 1));
}
