// Stable sorting of table rows by a column, numbers before blanks whichever the direction.
export type Direction = "asc" | "desc";
export type SortKey = number | string | null | undefined;

export function sortRows<T>(
  rows: readonly T[],
  key: (row: T) => SortKey,
  direction: Direction,
): T[] {
  const sign = direction === "asc" ? 1 : -1;
  return rows
    .map((row, index) => ({ row, index, value: key(row) }))
    .sort((a, b) => {
      const blankA =
        a.value === null ||
        a.value === undefined ||
        (typeof a.value === "number" && Number.isNaN(a.value));
      const blankB =
        b.value === null ||
        b.value === undefined ||
        (typeof b.value === "number" && Number.isNaN(b.value));
      if (blankA || blankB) return blankA === blankB ? a.index - b.index : blankA ? 1 : -1;
      const order =
        typeof a.value === "number" && typeof b.value === "number"
          ? a.value - b.value
          : String(a.value).localeCompare(String(b.value), undefined, { numeric: true });
      return order === 0 ? a.index - b.index : sign * order;
    })
    .map((entry) => entry.row);
}

export function nextDirection(
  currentKey: string | null,
  currentDirection: Direction,
  clicked: string,
): Direction {
  if (currentKey !== clicked) return "desc";
  return currentDirection === "desc" ? "asc" : "desc";
}
