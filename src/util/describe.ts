// describe(value): the one way error messages show a value that came from outside (a pickled
// object, a JSON header entry, a YAML node). It never throws and never runs code of the value:
// cycles, BigInts, 100k-deep lists, objects with a `toString` / `toJSON` key, getters, proxies and
// revoked proxies all print; the result is at most `max` characters (default 200) however large
// the value (a 5 MB string or a 1M-entry list costs O(max) work, not O(size)).
// It is not a serializer: the text is for people and is cut with '…'.

export const DESCRIBE_MAX = 200;

/** Cut a string to at most `max` characters, marking the cut with '…' and the original length. */
export function clip(s: string, max = DESCRIBE_MAX): string {
  if (s.length <= max) return s;
  const tail = `… (${s.length} chars)`;
  return `${s.slice(0, Math.max(0, max - tail.length))}${tail}`;
}

/** A short, safe, bounded rendering of any value for an error message (JSON-like). */
export function describe(value: unknown, max = DESCRIBE_MAX): string {
  try {
    const out: string[] = [];
    let len = 0;
    const budget = max + 1; // stop collecting as soon as the text is over the limit
    const seen = new Set<unknown>();
    const put = (s: string): boolean => {
      if (len >= budget) return false;
      const piece = s.length > budget - len ? s.slice(0, budget - len) : s;
      out.push(piece);
      len += piece.length;
      return len < budget;
    };
    const walk = (v: unknown, depth: number): boolean => {
      switch (typeof v) {
        case 'string':
          return put(`"${(v.length > budget ? v.slice(0, budget) : v).replace(/[\\"]/g, (c) => `\\${c}`).replace(/[\u0000-\u001f]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`)}${v.length > budget ? '' : '"'}`);
        case 'number':
        case 'boolean':
          return put(String(v));
        case 'bigint':
          return put(`${v.toString()}n`.length > budget ? `${v < 0n ? '-' : ''}(${v.toString(16).length * 4}-bit integer)` : `${v.toString()}`);
        case 'undefined':
          return put('undefined');
        case 'symbol':
          return put('Symbol()');
        case 'function':
          return put('[function]');
        default:
          break;
      }
      if (v === null) return put('null');
      if (seen.has(v)) return put('[cycle]');
      if (depth > 8) return put('…');
      seen.add(v);
      try {
        if (ArrayBuffer.isView(v)) {
          const n: unknown = Reflect.get(v, 'length');
          return put(`<${Object.prototype.toString.call(v).slice(8, -1)} of ${typeof n === 'number' ? n : (v as ArrayBufferView).byteLength} elements>`);
        }
        if (Array.isArray(v)) {
          if (!put('[')) return false;
          const n = v.length;
          for (let i = 0; i < n; i++) {
            if (i > 0 && !put(', ')) return false;
            if (len > max - 4 && i < n - 1) return put(`… ${n} items]`);
            if (!walk(v[i], depth + 1)) return false;
          }
          return put(']');
        }
        // plain objects (and anything else): own enumerable string keys, values read as data only
        if (!put('{')) return false;
        let i = 0;
        for (const k in v as object) {
          if (!Object.prototype.hasOwnProperty.call(v, k)) continue;
          if (i++ > 0 && !put(', ')) return false;
          if (!walk(k, depth + 1) || !put(': ')) return false;
          const d = Object.getOwnPropertyDescriptor(v, k);
          if (!walk(d === undefined ? undefined : 'value' in d ? d.value : '[getter]', depth + 1)) return false;
        }
        return put('}');
      } finally {
        seen.delete(v);
      }
    };
    walk(value, 0);
    const s = out.join('');
    return s.length > max ? `${s.slice(0, max - 1)}…` : s;
  } catch {
    // a revoked proxy or an exotic host object: say what it is without touching it further
    return `<${typeof value}>`;
  }
}
