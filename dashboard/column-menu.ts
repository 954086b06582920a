/**
 * The column picker: a button that opens a list of the fields in the data,
 * each with a checkbox that adds or removes its column. The list is built
 * when it opens, from the symbols' states, so it costs nothing per message.
 */
import { FIXED_FIELDS, label, sortFields } from './columns.js';

export interface ColumnSource {
  /** Fields present in the data now, in any order, repeats allowed. */
  seen(): Iterable<string>;
  /** The field columns shown, in order. */
  chosen(): readonly string[];
  /** Adds (`on`) or removes a field's column. */
  toggle(field: string, on: boolean): void;
}

export class ColumnMenu {
  constructor(
    private readonly button: HTMLButtonElement,
    private readonly menu: HTMLElement,
    private readonly source: ColumnSource,
  ) {
    button.addEventListener('click', () => (menu.hidden ? this.open() : this.close()));
    menu.addEventListener('change', (ev) => {
      const box = ev.target as HTMLInputElement;
      const field = box.dataset['field'];
      if (field !== undefined) source.toggle(field, box.checked);
    });
    // Closes on a click elsewhere and on Escape.
    document.addEventListener('mousedown', (ev) => {
      if (!menu.hidden && !menu.contains(ev.target as Node) && !button.contains(ev.target as Node)) this.close();
    });
    menu.addEventListener('keydown', (ev) => {
      if (ev.key === 'Escape') {
        this.close();
        button.focus();
      }
    });
  }

  private open(): void {
    const chosen = new Set(this.source.chosen());
    const fields = new Set(chosen);
    for (const f of this.source.seen()) if (!FIXED_FIELDS.has(f)) fields.add(f);
    const frag = document.createDocumentFragment();
    for (const f of sortFields(fields)) {
      const item = document.createElement('label');
      item.className = 'item';
      const box = document.createElement('input');
      box.type = 'checkbox';
      box.dataset['field'] = f;
      box.checked = chosen.has(f);
      const name = document.createElement('span');
      name.textContent = label(f);
      item.append(box, name);
      if (name.textContent !== f) {
        const key = document.createElement('span');
        key.className = 'key';
        key.textContent = f;
        item.append(key);
      }
      frag.appendChild(item);
    }
    if (fields.size === 0) {
      const none = document.createElement('p');
      none.className = 'none';
      none.textContent = 'no other fields in the data yet';
      frag.appendChild(none);
    }
    this.menu.replaceChildren(frag);
    this.menu.hidden = false;
    this.button.setAttribute('aria-expanded', 'true');
  }

  private close(): void {
    this.menu.hidden = true;
    this.button.setAttribute('aria-expanded', 'false');
  }
}
