// Output comparison with the fixture tolerances (fixtures/README "Tolerances"):
// normwise max|d| <= rtol * max|ref| (default 1e-4), elementwise |d| <= rtol|ref| + atol,
// exact for integer outputs; NaN/Inf must sit at the same positions.

export interface CheckSpec {
  mode: 'normwise' | 'elementwise' | 'exact';
  rtol: number;
  atol: number;
}

export interface CompareResult {
  ok: boolean;
  /** normwise error max|d| / max|ref| (or the worst elementwise ratio). */
  error: number;
  detail: string;
}

export function parseCheck(spec: unknown, isInt: boolean): CheckSpec {
  const s = (spec ?? {}) as { mode?: string; rtol?: number; atol?: number };
  const mode = s.mode === 'elementwise' || s.mode === 'exact' || s.mode === 'normwise' ? s.mode : isInt ? 'exact' : 'normwise';
  return { mode, rtol: s.rtol ?? 1e-4, atol: s.atol ?? (mode === 'elementwise' ? 1e-30 : 0) };
}

export function compareArrays(ours: ArrayLike<number>, ref: ArrayLike<number>, check: CheckSpec): CompareResult {
  if (ours.length !== ref.length) return { ok: false, error: Infinity, detail: `length ${ours.length} vs ${ref.length}` };
  let maxRef = 0, maxD = 0, worst = 0, worstAt = -1;
  for (let i = 0; i < ref.length; i++) {
    const r = ref[i]!, o = ours[i]!;
    const rf = Number.isFinite(r), of = Number.isFinite(o);
    if (!rf || !of) {
      const same = (Number.isNaN(r) && Number.isNaN(o)) || r === o;
      if (!same) return { ok: false, error: Infinity, detail: `non-finite mismatch at ${i}: ours ${o}, ref ${r}` };
      continue;
    }
    const d = Math.abs(o - r);
    maxRef = Math.max(maxRef, Math.abs(r));
    if (d > maxD) maxD = d;
    if (check.mode === 'elementwise') {
      const allowed = check.rtol * Math.abs(r) + check.atol;
      const ratio = d / allowed;
      if (ratio > worst) { worst = ratio; worstAt = i; }
    } else if (check.mode === 'exact' && d !== 0) {
      return { ok: false, error: d, detail: `exact mismatch at ${i}: ours ${o}, ref ${r}` };
    }
  }
  if (check.mode === 'exact') return { ok: true, error: 0, detail: 'exact' };
  if (check.mode === 'elementwise') {
    const ok = worst <= 1;
    return { ok, error: worst * check.rtol, detail: ok ? `elementwise worst ${(worst * check.rtol).toExponential(2)} (rel)` : `elementwise: element ${worstAt} off by ${(worst).toFixed(2)}x the allowed ${check.rtol} rel (ours ${ours[worstAt]}, ref ${ref[worstAt]})` };
  }
  const err = maxRef > 0 ? maxD / maxRef : maxD;
  return { ok: maxD <= check.rtol * maxRef || maxD === 0, error: err, detail: `normwise ${err.toExponential(2)}` };
}
