/**
 * Symbol picker: type a prefix, pick from the gateway's known symbols
 * (`op: "symbols"`), Enter or click to add. Lookups are debounced and a late
 * answer to an older prefix is dropped.
 */

const DEBOUNCE_MS = 120;
const LIMIT = 20;

export interface PickerSource {
  search(prefix: string, limit: number): Promise<string[]>;
  has(symbol: string): boolean;
  pick(symbol: string): void;
}

export class Picker {
  private items: string[] = [];
  private active = -1;
  private seq = 0;
  private timer: ReturnType<typeof setTimeout> | null = null;

  constructor(
    private readonly input: HTMLInputElement,
    private readonly list: HTMLUListElement,
    private readonly source: PickerSource,
  ) {
    input.addEventListener('input', () => this.schedule());
    input.addEventListener('focus', () => this.schedule());
    input.addEventListener('keydown', (ev) => this.onKey(ev));
    input.addEventListener('blur', () => {
      // Let a click on a suggestion land first.
      setTimeout(() => this.close(), 150);
    });
    list.addEventListener('mousedown', (ev) => {
      const li = (ev.target as HTMLElement).closest('li');
      const symbol = li?.dataset['symbol'];
      if (symbol === undefined) return;
      ev.preventDefault();
      this.choose(symbol);
    });
  }

  private get query(): string {
    return this.input.value.trim().toUpperCase();
  }

  private schedule(): void {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = setTimeout(() => void this.lookup(), DEBOUNCE_MS);
  }

  private async lookup(): Promise<void> {
    const prefix = this.query;
    const seq = ++this.seq;
    let found: string[];
    let failed = false;
    try {
      found = await this.source.search(prefix, LIMIT);
    } catch {
      found = [];
      failed = true;
    }
    if (seq !== this.seq || document.activeElement !== this.input) return;
    this.items = found;
    this.active = found.length > 0 ? 0 : -1;
    this.draw(prefix, failed);
  }

  private draw(prefix: string, failed = false): void {
    const frag = document.createDocumentFragment();
    this.items.forEach((s, i) => {
      const li = document.createElement('li');
      li.textContent = s;
      li.dataset['symbol'] = s;
      li.setAttribute('role', 'option');
      if (i === this.active) li.classList.add('active');
      if (this.source.has(s)) li.classList.add('have');
      frag.appendChild(li);
    });
    if (this.items.length === 0) {
      const li = document.createElement('li');
      li.className = 'none';
      li.textContent = failed
        ? 'cannot search while disconnected; Enter adds what you typed'
        : prefix === ''
          ? 'no symbols known yet'
          : `no symbol starts with ${prefix}; Enter adds it anyway`;
      frag.appendChild(li);
    }
    this.list.replaceChildren(frag);
    this.list.hidden = false;
  }

  private onKey(ev: KeyboardEvent): void {
    if (ev.key === 'ArrowDown' || ev.key === 'ArrowUp') {
      if (this.items.length === 0) return;
      ev.preventDefault();
      this.active = (this.active + (ev.key === 'ArrowDown' ? 1 : -1) + this.items.length) % this.items.length;
      this.draw(this.query);
      this.list.children[this.active]?.scrollIntoView({ block: 'nearest' });
    } else if (ev.key === 'Enter') {
      ev.preventDefault();
      // The highlighted suggestion, else exactly what was typed (a symbol may not have ticked yet).
      const typed = this.query;
      const chosen = this.active >= 0 ? this.items[this.active] : typed;
      if (chosen !== undefined && chosen !== '') this.choose(chosen);
    } else if (ev.key === 'Escape') {
      this.close();
      this.input.blur();
    }
  }

  private choose(symbol: string): void {
    this.source.pick(symbol);
    this.input.value = '';
    this.close();
  }

  private close(): void {
    this.seq++;
    this.items = [];
    this.active = -1;
    this.list.hidden = true;
  }
}
