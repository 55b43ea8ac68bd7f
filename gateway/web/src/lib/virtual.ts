// Which rows of a fixed-row-height table to put in the DOM for a scroll position.
export interface RowWindow {
  start: number; // first row index rendered
  end: number; // one past the last row rendered
  offsetTop: number; // px from the top of the scroll content to the first rendered row
  totalHeight: number; // px of the whole (virtual) content
}

export function rowWindow(
  rowCount: number,
  rowHeight: number,
  scrollTop: number,
  viewportHeight: number,
  overscan = 8,
): RowWindow {
  const totalHeight = rowCount * rowHeight;
  if (rowCount === 0 || rowHeight <= 0) return { start: 0, end: 0, offsetTop: 0, totalHeight };
  const maxTop = Math.max(0, totalHeight - viewportHeight);
  const top = Math.min(Math.max(0, scrollTop), maxTop);
  const first = Math.floor(top / rowHeight);
  const visible = Math.ceil(viewportHeight / rowHeight) + 1;
  const start = Math.max(0, first - overscan);
  const end = Math.min(rowCount, first + visible + overscan);
  return { start, end, offsetTop: start * rowHeight, totalHeight };
}
