// The inner attention kernel, written once over a few vector macros and included twice by
// attention.cc: once inside `#pragma GCC target("avx512f,...")` (16 lanes) and once for the
// AVX2 baseline (8 lanes). Deliberately no include guard and no STL: everything defined here
// is static and compiled for the ISA of the region it is included in.
//
// Before including, attention.cc defines: NS (namespace name), VW (lanes), vf (vector type),
// LD, ST, STREAM, FMA, FNMA, SET1, ADD, SUB, MUL, MAX, ZERO, ROUND, HSUM, HMAX,
// EXP2N (y * 2^n); the end of this file undefines them all, ready for the next instantiation.

namespace NS {

/** e^(x - m) computed as 2^t with t = (x - m) log2(e) = n + r, |r| <= 1/2: 2^r by its degree-6
 *  Taylor polynomial (relative error about 1e-7), 2^n exactly. For x <= m (softmax after the
 *  row max; x - m is formed first, so masks of -FLT_MAX do not overflow: a row masked
 *  everywhere attends uniformly, as in PyTorch); t below -150 (including -inf, NaN) gives 0. */
static inline vf vexpShift(vf x, vf m) {
  vf t = MUL(SUB(x, m), SET1(1.44269504088896341f));
  t = MAX(t, SET1(-150.f));
  vf n = ROUND(t);
  vf r = SUB(t, n);
  vf y = SET1(1.5252733804059841e-5f);
  y = FMA(y, r, SET1(1.5403530393381608e-4f));
  y = FMA(y, r, SET1(1.3333558146428443e-3f));
  y = FMA(y, r, SET1(9.6181291076284772e-3f));
  y = FMA(y, r, SET1(5.5504108664821580e-2f));
  y = FMA(y, r, SET1(2.4022650695910071e-1f));
  y = FMA(y, r, SET1(6.9314718055994531e-1f));
  y = FMA(y, r, SET1(1.f));
  return EXP2N(y, n);
}

/** S[r][j] = scale * sum_t q[r][t] kT[t][j] for a 6-row panel, j over skp (a multiple of 2 VW). */
static void qkPanel(const float* q, int64_t d, const float* kT, int64_t skp, float scale, float* S) {
  const vf sv = SET1(scale);
  for (int64_t j = 0; j < skp; j += 2 * VW) {
    vf a00 = ZERO(), a01 = ZERO(), a10 = ZERO(), a11 = ZERO(), a20 = ZERO(), a21 = ZERO();
    vf a30 = ZERO(), a31 = ZERO(), a40 = ZERO(), a41 = ZERO(), a50 = ZERO(), a51 = ZERO();
    const float* kc = kT + j;
    for (int64_t t = 0; t < d; t++) {
      vf k0 = LD(kc + t * skp), k1 = LD(kc + t * skp + VW);
      vf b;
      b = SET1(q[t]); a00 = FMA(b, k0, a00); a01 = FMA(b, k1, a01);
      b = SET1(q[d + t]); a10 = FMA(b, k0, a10); a11 = FMA(b, k1, a11);
      b = SET1(q[2 * d + t]); a20 = FMA(b, k0, a20); a21 = FMA(b, k1, a21);
      b = SET1(q[3 * d + t]); a30 = FMA(b, k0, a30); a31 = FMA(b, k1, a31);
      b = SET1(q[4 * d + t]); a40 = FMA(b, k0, a40); a41 = FMA(b, k1, a41);
      b = SET1(q[5 * d + t]); a50 = FMA(b, k0, a50); a51 = FMA(b, k1, a51);
    }
    float* s = S + j;
    ST(s, MUL(a00, sv)); ST(s + VW, MUL(a01, sv)); s += skp;
    ST(s, MUL(a10, sv)); ST(s + VW, MUL(a11, sv)); s += skp;
    ST(s, MUL(a20, sv)); ST(s + VW, MUL(a21, sv)); s += skp;
    ST(s, MUL(a30, sv)); ST(s + VW, MUL(a31, sv)); s += skp;
    ST(s, MUL(a40, sv)); ST(s + VW, MUL(a41, sv)); s += skp;
    ST(s, MUL(a50, sv)); ST(s + VW, MUL(a51, sv));
  }
}

/** O[r][c] = inv[r] * sum_j E[r][j] vP[j][c] for a 6-row panel; c over dvp (a multiple of VW),
 *  O rows have stride dvp. */
static void pvPanel(const float* E, int64_t skp, int64_t sk, const float* vP, int64_t dvp, const float* inv,
                    float* O) {
  int64_t c = 0;
  for (; c + 2 * VW <= dvp; c += 2 * VW) {
    vf a00 = ZERO(), a01 = ZERO(), a10 = ZERO(), a11 = ZERO(), a20 = ZERO(), a21 = ZERO();
    vf a30 = ZERO(), a31 = ZERO(), a40 = ZERO(), a41 = ZERO(), a50 = ZERO(), a51 = ZERO();
    const float* vc = vP + c;
    for (int64_t j = 0; j < sk; j++) {
      vf v0 = LD(vc + j * dvp), v1 = LD(vc + j * dvp + VW);
      vf b;
      b = SET1(E[j]); a00 = FMA(b, v0, a00); a01 = FMA(b, v1, a01);
      b = SET1(E[skp + j]); a10 = FMA(b, v0, a10); a11 = FMA(b, v1, a11);
      b = SET1(E[2 * skp + j]); a20 = FMA(b, v0, a20); a21 = FMA(b, v1, a21);
      b = SET1(E[3 * skp + j]); a30 = FMA(b, v0, a30); a31 = FMA(b, v1, a31);
      b = SET1(E[4 * skp + j]); a40 = FMA(b, v0, a40); a41 = FMA(b, v1, a41);
      b = SET1(E[5 * skp + j]); a50 = FMA(b, v0, a50); a51 = FMA(b, v1, a51);
    }
    float* o = O + c;
    vf s;
    s = SET1(inv[0]); ST(o, MUL(a00, s)); ST(o + VW, MUL(a01, s)); o += dvp;
    s = SET1(inv[1]); ST(o, MUL(a10, s)); ST(o + VW, MUL(a11, s)); o += dvp;
    s = SET1(inv[2]); ST(o, MUL(a20, s)); ST(o + VW, MUL(a21, s)); o += dvp;
    s = SET1(inv[3]); ST(o, MUL(a30, s)); ST(o + VW, MUL(a31, s)); o += dvp;
    s = SET1(inv[4]); ST(o, MUL(a40, s)); ST(o + VW, MUL(a41, s)); o += dvp;
    s = SET1(inv[5]); ST(o, MUL(a50, s)); ST(o + VW, MUL(a51, s));
  }
  for (; c < dvp; c += VW) {
    vf a0 = ZERO(), a1 = ZERO(), a2 = ZERO(), a3 = ZERO(), a4 = ZERO(), a5 = ZERO();
    const float* vc = vP + c;
    for (int64_t j = 0; j < sk; j++) {
      vf v0 = LD(vc + j * dvp);
      a0 = FMA(SET1(E[j]), v0, a0);
      a1 = FMA(SET1(E[skp + j]), v0, a1);
      a2 = FMA(SET1(E[2 * skp + j]), v0, a2);
      a3 = FMA(SET1(E[3 * skp + j]), v0, a3);
      a4 = FMA(SET1(E[4 * skp + j]), v0, a4);
      a5 = FMA(SET1(E[5 * skp + j]), v0, a5);
    }
    float* o = O + c;
    ST(o, MUL(a0, SET1(inv[0]))); o += dvp;
    ST(o, MUL(a1, SET1(inv[1]))); o += dvp;
    ST(o, MUL(a2, SET1(inv[2]))); o += dvp;
    ST(o, MUL(a3, SET1(inv[3]))); o += dvp;
    ST(o, MUL(a4, SET1(inv[4]))); o += dvp;
    ST(o, MUL(a5, SET1(inv[5])));
  }
}

/** One row of S (length skp, padding past sk): + mask, exp(x - max) in place, returns 1/sum,
 *  writes the normalised row (first sk entries) to P, with streaming stores when nt. */
static float softmaxRowN(float* row, int64_t sk, int64_t skp, const float* mask, int64_t mstride, float* P, bool nt) {
  if (mask) {
    if (mstride == 1) {
      int64_t j = 0;
      for (; j + VW <= sk; j += VW) ST(row + j, ADD(LD(row + j), LD(mask + j)));
      for (; j < sk; j++) row[j] += mask[j];
    } else {
      for (int64_t j = 0; j < sk; j++) row[j] += mask[j * mstride];
    }
  }
  for (int64_t j = sk; j < skp; j++) row[j] = -__builtin_inff();
  vf m = SET1(-__builtin_inff());
  for (int64_t j = 0; j < skp; j += VW) m = MAX(m, LD(row + j));
  float mx = HMAX(m);
  vf mv = SET1(mx), acc = ZERO();
  for (int64_t j = 0; j < skp; j += VW) {
    vf e = vexpShift(LD(row + j), mv);
    ST(row + j, e);
    acc = ADD(acc, e);
  }
  float inv = 1.f / HSUM(acc);
  vf iv = SET1(inv);
  int64_t j = 0;
  if (nt) {
    for (; j < sk && (reinterpret_cast<uintptr_t>(P + j) & (VW * 4 - 1)) != 0; j++) P[j] = row[j] * inv;
    for (; j + VW <= sk; j += VW) STREAM(P + j, MUL(LD(row + j), iv));
  } else {
    for (; j + VW <= sk; j += VW) ST(P + j, MUL(LD(row + j), iv));
  }
  for (; j < sk; j++) P[j] = row[j] * inv;
  return inv;
}

}  // namespace NS

#undef NS
#undef VW
#undef vf
#undef LD
#undef ST
#undef STREAM
#undef FMA
#undef FNMA
#undef SET1
#undef ADD
#undef SUB
#undef MUL
#undef MAX
#undef ZERO
#undef ROUND
#undef HSUM
#undef HMAX
#undef EXP2N
