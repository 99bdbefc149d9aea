// What an ES256 (ECDSA P-256) verification would cost inside a CloudFront Function, which has
// no ECDSA in its crypto module and no BigInt: the time of one multiplication modulo the P-256
// prime in plain numbers (Montgomery, 16 limbs of 16 bits: every partial product stays below
// 2^53), measured here, times the multiplications one verification needs at the least.
//
//   njs es256-cost.js     (the interpreter; njs's clock counts milliseconds, so 20 000 runs)
//   node es256-cost.js
//
// The count: u1*G + u2*Q by Shamir's trick in Jacobian coordinates is 256 doublings (8
// multiplications or squarings each with a = -3) and about 192 mixed additions (11 each), plus
// s^-1 mod n by Fermat (about 256 squarings and 128 multiplications): about 4 500 field
// multiplications, before the additions, subtractions and reductions around them.

var W = 65536;
// P-256 prime, little-endian 16-bit limbs: 2^256 - 2^224 + 2^192 + 2^96 - 1.
var P = [0xffff, 0xffff, 0xffff, 0xffff, 0xffff, 0xffff, 0, 0, 0, 0, 0, 0, 1, 0, 0xffff, 0xffff];

// a * b * 2^-256 mod p (CIOS; p = -1 mod 2^16, so the Montgomery factor is 1).
function mul(a, b) {
  var t = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
  var i, j, c, x, m;
  for (i = 0; i < 16; i++) {
    c = 0;
    for (j = 0; j < 16; j++) {
      x = t[j] + a[j] * b[i] + c;
      c = Math.floor(x / W);
      t[j] = x - c * W;
    }
    x = t[16] + c;
    c = Math.floor(x / W);
    t[16] = x - c * W;
    t[17] = c;
    m = t[0];
    x = t[0] + m * P[0];
    c = Math.floor(x / W);
    for (j = 1; j < 16; j++) {
      x = t[j] + m * P[j] + c;
      c = Math.floor(x / W);
      t[j - 1] = x - c * W;
    }
    x = t[16] + c;
    c = Math.floor(x / W);
    t[15] = x - c * W;
    t[16] = t[17] + c;
  }
  var ge = t[16] > 0;
  if (!ge) {
    ge = true;
    for (j = 15; j >= 0; j--) {
      if (t[j] !== P[j]) {
        ge = t[j] > P[j];
        break;
      }
    }
  }
  if (ge) {
    c = 0;
    for (j = 0; j < 16; j++) {
      x = t[j] - P[j] - c;
      c = x < 0 ? 1 : 0;
      t[j] = x + c * W;
    }
  }
  return t.slice(0, 16);
}

var a = [];
for (var k = 0; k < 16; k++) a.push((k * 40503 + 12345) % W);
var b = a.slice();
var n = 20000;
for (k = 0; k < 200; k++) b = mul(b, a);
var t0 = Date.now();
for (k = 0; k < n; k++) b = mul(b, a);
var us = ((Date.now() - t0) * 1000) / n;
var perVerify = 4500;
console.log(JSON.stringify({
  field_multiplication_us: Number(us.toFixed(2)),
  multiplications_per_verification: perVerify,
  verification_ms_at_least: Number(((us * perVerify) / 1000).toFixed(1)),
  check: b[0],
}));
