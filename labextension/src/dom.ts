/** The sidebar's one DOM helper, shared by its sections (panel.ts, history.ts). */

/** A new element of `tag` with a class and, optionally, its text. */
export function el(tag: string, className: string, text?: string): HTMLElement {
  const node = document.createElement(tag);
  node.className = className;
  if (text !== undefined) {
    node.textContent = text;
  }
  return node;
}
