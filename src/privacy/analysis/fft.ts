/** The FFT under PLD self-composition (pld.ts): pure functions, no state beyond a twiddle cache. */

// ---------------------------------------------------------------------------------------------
// FFT. Interleaved complex arrays, bit-reversed input, radix-2 stages fused in pairs (radix-4
// passes halve the sweeps over memory, which is what bounds speed at 2^21+ points), and the
// classic packing of a real sequence of length 2M into one complex FFT of length M.
// ---------------------------------------------------------------------------------------------

let twiddleCache: { m: number; tw: Float64Array } | null = null;

/**
 * Forward twiddles for every stage: entries h..2h−1 hold exp(−iπk/h), k < h (interleaved), for
 * h = 1 … m (the h = m level doubles as the real-packing twiddles exp(−2πik/2m)). The last table
 * is cached: the ADD and REMOVE compositions usually need the same size.
 */
function stageTwiddles(m: number): Float64Array {
  if (twiddleCache && twiddleCache.m === m) return twiddleCache.tw;
  const tw = new Float64Array(4 * m);
  for (let h = 1; h <= m; h <<= 1) {
    for (let k = 0; k < h; k++) {
      const a = (-Math.PI * k) / h;
      tw[2 * (h + k)] = Math.cos(a);
      tw[2 * (h + k) + 1] = Math.sin(a);
    }
  }
  twiddleCache = { m, tw };
  return tw;
}

/** In-place unnormalised complex DFT of length m (power of two); sign −1 forward, +1 inverse. */
function complexFft(x: Float64Array, m: number, sign: number, tw: Float64Array): void {
  for (let i = 1, j = 0; i < m; i++) {
    let bit = m >> 1;
    for (; j & bit; bit >>= 1) j ^= bit;
    j ^= bit;
    if (i < j) {
      const i2 = 2 * i;
      const j2 = 2 * j;
      let t = x[i2];
      x[i2] = x[j2];
      x[j2] = t;
      t = x[i2 + 1];
      x[i2 + 1] = x[j2 + 1];
      x[j2 + 1] = t;
    }
  }
  let h = 1;
  // Two radix-2 stages (half sizes h and 2h) per sweep.
  for (; 2 * h < m; h <<= 2) {
    const g = 2 * h;
    for (let base = 0; base < m; base += 4 * h) {
      for (let k = 0; k < h; k++) {
        const w1r = tw[2 * (h + k)];
        const w1i = -sign * tw[2 * (h + k) + 1];
        const w2r = tw[2 * (g + k)];
        const w2i = -sign * tw[2 * (g + k) + 1];
        const i0 = 2 * (base + k);
        const i1 = i0 + 2 * h;
        const i2 = i1 + 2 * h;
        const i3 = i2 + 2 * h;
        // stage h: pairs (0,1) and (2,3) with w1
        let tr = x[i1] * w1r - x[i1 + 1] * w1i;
        let ti = x[i1] * w1i + x[i1 + 1] * w1r;
        const a0r = x[i0] + tr;
        const a0i = x[i0 + 1] + ti;
        const a1r = x[i0] - tr;
        const a1i = x[i0 + 1] - ti;
        tr = x[i3] * w1r - x[i3 + 1] * w1i;
        ti = x[i3] * w1i + x[i3 + 1] * w1r;
        const a2r = x[i2] + tr;
        const a2i = x[i2 + 1] + ti;
        const a3r = x[i2] - tr;
        const a3i = x[i2 + 1] - ti;
        // stage 2h: pairs (0,2) with w2 and (1,3) with w2·exp(sign·iπ/2) = w2·(sign·i)
        const b2r = a2r * w2r - a2i * w2i;
        const b2i = a2r * w2i + a2i * w2r;
        const c3r = a3r * w2r - a3i * w2i;
        const c3i = a3r * w2i + a3i * w2r;
        const b3r = -sign * c3i;
        const b3i = sign * c3r;
        x[i0] = a0r + b2r;
        x[i0 + 1] = a0i + b2i;
        x[i2] = a0r - b2r;
        x[i2 + 1] = a0i - b2i;
        x[i1] = a1r + b3r;
        x[i1 + 1] = a1i + b3i;
        x[i3] = a1r - b3r;
        x[i3 + 1] = a1i - b3i;
      }
    }
  }
  if (h < m) {
    for (let base = 0; base < m; base += 2 * h) {
      for (let k = 0; k < h; k++) {
        const wr = tw[2 * (h + k)];
        const wi = -sign * tw[2 * (h + k) + 1];
        const a = 2 * (base + k);
        const b = a + 2 * h;
        const tr = x[b] * wr - x[b + 1] * wi;
        const ti = x[b] * wi + x[b + 1] * wr;
        x[b] = x[a] - tr;
        x[b + 1] = x[a + 1] - ti;
        x[a] += tr;
        x[a + 1] += ti;
      }
    }
  }
}

/**
 * Cyclic n-fold self-convolution of a real sequence of length `size` (power of two ≥ 4), via one
 * forward and one inverse complex FFT of length size/2. The power X^n is taken in polar form.
 */
export function cyclicSelfConvolve(input: Float64Array, size: number, times: number): Float64Array {
  const m = size >> 1;
  const z = new Float64Array(2 * m);
  z.set(input); // interleaving x[2j] + i·x[2j+1] is exactly the real array's memory layout
  const tw = stageTwiddles(m);
  complexFft(z, m, -1, tw);
  // W^k = exp(−2πik/size), k = 0..m
  const spec = new Float64Array(2 * (m + 1));
  for (let k = 0; k <= m; k++) {
    const k1 = k % m;
    const k2 = (m - k) % m;
    const zr = z[2 * k1];
    const zi = z[2 * k1 + 1];
    const cr = z[2 * k2];
    const ci = -z[2 * k2 + 1];
    const er = 0.5 * (zr + cr);
    const ei = 0.5 * (zi + ci);
    // O = (Z − conj Z')/(2i)
    const or = 0.5 * (zi - ci);
    const oi = -0.5 * (zr - cr);
    const wr = k < m ? tw[2 * (m + k)] : -1;
    const wi = k < m ? tw[2 * (m + k) + 1] : 0;
    let xr = er + (or * wr - oi * wi);
    let xi = ei + (or * wi + oi * wr);
    const r = Math.hypot(xr, xi);
    if (r === 0) {
      xr = 0;
      xi = 0;
    } else {
      const mag = Math.exp(times * Math.log(r));
      const ang = times * Math.atan2(xi, xr);
      xr = mag * Math.cos(ang);
      xi = mag * Math.sin(ang);
    }
    spec[2 * k] = xr;
    spec[2 * k + 1] = xi;
  }
  // Repack the Hermitian spectrum Y into Z'[k] = E[k] + i·O[k] for the half-length inverse.
  for (let k = 0; k < m; k++) {
    const yr = spec[2 * k];
    const yi = spec[2 * k + 1];
    const cr = spec[2 * (m - k)];
    const ci = -spec[2 * (m - k) + 1];
    const er = 0.5 * (yr + cr);
    const ei = 0.5 * (yi + ci);
    const dr = 0.5 * (yr - cr);
    const di = 0.5 * (yi - ci);
    const wr = tw[2 * (m + k)];
    const wi = -tw[2 * (m + k) + 1];
    const or = dr * wr - di * wi;
    const oi = dr * wi + di * wr;
    z[2 * k] = er - oi;
    z[2 * k + 1] = ei + or;
  }
  complexFft(z, m, 1, tw);
  for (let i = 0; i < 2 * m; i++) z[i] /= m;
  return z; // z[2j] = y[2j], z[2j+1] = y[2j+1]: already the real output in order
}
