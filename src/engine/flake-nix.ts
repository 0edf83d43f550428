/**
 * Just enough of Nix's syntax to find where `flake.nix` sets one input's `url` (or `ref`), so that a
 * release upgrade can change that one string and keep every other byte of the file. Comments,
 * `"…"` and `''…''` strings (with `${…}`), `let … in`, `with …;` and `assert …;` are understood; the
 * rest of an expression is skipped by bracket depth. What cannot be told for sure is reported as
 * such (computed, ambiguous, not found): the caller refuses rather than guesses.
 */

interface Token {
  kind: 'ident' | 'string' | 'uri' | 'punct' | 'other';
  text: string;
  start: number;
  end: number;
  /** Strings: the content between the quotes (raw), and whether it interpolates `${…}`. */
  content?: string;
  contentStart?: number;
  interpolated?: boolean;
}

/** Where the input's url (or ref) is set: a plain literal, or an expression hv cannot rewrite. */
export interface InputAttr {
  /** Attribute path, e.g. ['inputs', 'nixpkgs', 'url']. */
  path: string[];
  /** The literal's token, undefined when the value is computed. */
  literal?: { content: string; contentStart: number; contentEnd: number; quoted: boolean };
  line: number;
}

class Lexer {
  pos = 0;
  readonly tokens: Token[] = [];
  constructor(private readonly s: string) {}

  run(untilBrace = false): void {
    const s = this.s;
    let depth = 0;
    while (this.pos < s.length) {
      const c = s[this.pos] as string;
      const start = this.pos;
      if (/\s/.test(c)) {
        this.pos++;
      } else if (c === '#') {
        const nl = s.indexOf('\n', this.pos);
        this.pos = nl < 0 ? s.length : nl + 1;
      } else if (s.startsWith('/*', this.pos)) {
        const e = s.indexOf('*/', this.pos + 2);
        this.pos = e < 0 ? s.length : e + 2;
      } else if (c === '"') {
        this.string(start);
      } else if (s.startsWith("''", this.pos)) {
        this.indented(start);
      } else if (/[A-Za-z_]/.test(c)) {
        const uri = /^[A-Za-z][A-Za-z0-9+.-]*:[A-Za-z0-9%/?:@&=+$,\-_.!~*']+/.exec(s.slice(this.pos));
        if (uri) {
          this.pos += uri[0].length;
          this.push('uri', start, { content: uri[0], contentStart: start });
        } else {
          const id = /^[A-Za-z_][A-Za-z0-9_'-]*/.exec(s.slice(this.pos)) as RegExpExecArray;
          this.pos += id[0].length;
          this.push('ident', start);
        }
      } else if ('{}[]();=.,:?@'.includes(c)) {
        if (untilBrace && c === '{') depth++;
        if (untilBrace && c === '}') {
          if (depth === 0) {
            this.pos++;
            return;
          }
          depth--;
        }
        if (s.startsWith('...', this.pos)) {
          this.pos += 3;
          this.push('other', start);
          continue;
        }
        this.pos++;
        this.push('punct', start);
      } else if (s.startsWith('${', this.pos)) {
        // An interpolation outside a string (a dynamic attribute name).
        this.pos += 2;
        this.skipInterpolation();
        this.push('other', start);
      } else {
        this.pos++;
        this.push('other', start);
      }
    }
  }

  private push(kind: Token['kind'], start: number, extra: Partial<Token> = {}): void {
    this.tokens.push({ kind, text: this.s.slice(start, this.pos), start, end: this.pos, ...extra });
  }

  /** Skip `${ … }` (the `${` already consumed), nested strings and braces included. */
  private skipInterpolation(): void {
    const inner = new Lexer(this.s);
    inner.pos = this.pos;
    inner.run(true);
    this.pos = inner.pos;
  }

  private string(start: number): void {
    const s = this.s;
    this.pos++;
    let interpolated = false;
    while (this.pos < s.length && s[this.pos] !== '"') {
      if (s[this.pos] === '\\') this.pos += 2;
      else if (s.startsWith('${', this.pos)) {
        interpolated = true;
        this.pos += 2;
        this.skipInterpolation();
      } else this.pos++;
    }
    const contentEnd = this.pos;
    this.pos++;
    this.push('string', start, {
      content: s.slice(start + 1, contentEnd),
      contentStart: start + 1,
      interpolated,
    });
  }

  private indented(start: number): void {
    const s = this.s;
    this.pos += 2;
    let interpolated = false;
    while (this.pos < s.length) {
      if (s.startsWith("''", this.pos)) {
        const next = s[this.pos + 2];
        if (next === '$' || next === "'") this.pos += 3;
        else if (next === '\\') this.pos += 4;
        else break;
      } else if (s.startsWith('${', this.pos)) {
        interpolated = true;
        this.pos += 2;
        this.skipInterpolation();
      } else this.pos++;
    }
    const contentEnd = this.pos;
    this.pos += 2;
    // An indented string strips indentation: treat it as computed unless it is one plain line.
    const content = s.slice(start + 2, contentEnd);
    this.push('string', start, {
      content,
      contentStart: start + 2,
      interpolated: interpolated || content.includes('\n') || content.includes("''"),
    });
  }
}

const OPEN = new Set(['{', '(', '[', 'let']);
const CLOSE = new Set(['}', ')', ']', 'in']);

class Parser {
  i = 0;
  readonly found: InputAttr[] = [];
  constructor(
    private readonly t: Token[],
    private readonly lineOf: (pos: number) => number,
  ) {}

  private peek(k = 0): Token | undefined {
    return this.t[this.i + k];
  }

  private is(tok: Token | undefined, text: string): boolean {
    return tok !== undefined && (tok.kind === 'punct' || tok.kind === 'ident') && tok.text === text;
  }

  /** Skip one expression up to (not including) the `;` or closing bracket that ends it. */
  private skipExpr(): void {
    let depth = 0;
    let pendingSemis = 0;
    for (; this.i < this.t.length; this.i++) {
      const tok = this.t[this.i] as Token;
      const word = tok.kind === 'punct' || tok.kind === 'ident' ? tok.text : '';
      if (OPEN.has(word)) depth++;
      else if (CLOSE.has(word)) {
        if (depth === 0) return;
        depth--;
      } else if (word === 'with' || word === 'assert') {
        if (depth === 0) pendingSemis++;
      } else if (word === ';' && depth === 0) {
        if (pendingSemis === 0) return;
        pendingSemis--;
      }
    }
  }

  /** Bindings of an attribute set whose `{` was consumed, up to its `}`. */
  bindings(prefix: string[]): void {
    while (this.i < this.t.length && !this.is(this.peek(), '}')) {
      if (this.is(this.peek(), 'inherit')) {
        this.skipExpr();
        this.i++;
        continue;
      }
      const path: string[] = [];
      let dynamic = false;
      for (;;) {
        const tok = this.peek();
        if (!tok) return;
        if (tok.kind === 'ident') path.push(tok.text);
        else if (tok.kind === 'string' && !tok.interpolated) path.push(tok.content as string);
        else {
          dynamic = true;
          path.push('?');
        }
        this.i++;
        if (this.is(this.peek(), '.')) this.i++;
        else break;
      }
      if (!this.is(this.peek(), '=')) {
        // Not a binding this parser understands: give up on this set.
        this.skipExpr();
        this.i++;
        continue;
      }
      this.i++;
      const full = [...prefix, ...path];
      this.value(full, dynamic);
      if (this.is(this.peek(), ';')) this.i++;
    }
  }

  private value(path: string[], dynamic: boolean): void {
    const first = this.peek();
    const second = this.peek(1);
    const relevant = path[0] === 'inputs' || dynamic;
    if (!first) return;
    if (relevant && this.is(first, '{') && path.length <= 3 && !dynamic) {
      this.i++;
      this.bindings(path);
      if (this.is(this.peek(), '}')) this.i++;
      return;
    }
    const line = this.lineOf(first.start);
    if (
      relevant &&
      (first.kind === 'string' || first.kind === 'uri') &&
      !first.interpolated &&
      (this.is(second, ';') || this.is(second, '}'))
    ) {
      this.found.push({
        path,
        line,
        literal: {
          content: first.content as string,
          contentStart: first.contentStart as number,
          contentEnd: (first.contentStart as number) + (first.content as string).length,
          quoted: first.kind === 'string',
        },
      });
      this.i++;
      return;
    }
    if (relevant) this.found.push({ path, line });
    this.skipExpr();
  }
}

export interface FlakeNixScan {
  /** Every `inputs…` binding (and dynamic ones), with its literal when it is one. */
  attrs: InputAttr[];
  /** Plain string literals of the whole file, by content (for the ambiguity check). */
  literals: { content: string; line: number; contentStart: number }[];
  /** The file is an attribute set at its top level. */
  topLevelSet: boolean;
}

/** Scan a flake.nix for its `inputs` bindings. Never throws on odd input: it just finds less. */
export function scanFlakeNix(text: string): FlakeNixScan {
  const lx = new Lexer(text);
  lx.run();
  const starts: number[] = [0];
  for (let i = 0; i < text.length; i++) if (text[i] === '\n') starts.push(i + 1);
  const lineOf = (pos: number) => {
    let lo = 0;
    let hi = starts.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if ((starts[mid] as number) <= pos) lo = mid;
      else hi = mid - 1;
    }
    return lo + 1;
  };
  const p = new Parser(lx.tokens, lineOf);
  let i = 0;
  if (lx.tokens[0]?.text === 'rec') i = 1;
  const topLevelSet = lx.tokens[i]?.text === '{' && lx.tokens[i]?.kind === 'punct';
  if (topLevelSet) {
    p.i = i + 1;
    p.bindings([]);
  }
  const literals = lx.tokens
    .filter((t) => (t.kind === 'string' || t.kind === 'uri') && !t.interpolated)
    .map((t) => ({
      content: t.content as string,
      line: lineOf(t.start),
      contentStart: t.contentStart as number,
    }));
  return { attrs: p.found, literals, topLevelSet };
}
