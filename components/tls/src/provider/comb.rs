//! P-256 ECDSA signing with a fixed-base table for k·G.
//!
//! `p256`'s signer computes the nonce point k·G with `primeorder`'s generic variable-base
//! multiplication: a table of 16 multiples of G built again for every signature, then 64
//! four-bit windows, each four doublings and an addition (about 256 doublings and 80
//! additions of projective points). G never changes, so here its multiples are computed
//! once, into the heap rather than into `.rodata` (the image's size is a goal of its own):
//! for each of the 65 radix-16 positions i, the points j·16^i·G for j = 1..=8, affine,
//! 520 points of 72 bytes (37,440 B of heap, a test pins it). k is recoded into 65 signed
//! digits d_i in [-8, 7] (the last one 0 or 1) with k = Σ d_i·16^i, and
//! k·G = Σ d_i·(16^i·G): 65 additions, each of a point picked from its row of 8 by a
//! constant-time scan (every entry read, the wanted one kept with `conditional_assign`)
//! and negated with `conditional_negate` when d_i < 0; a zero digit picks the identity,
//! which `primeorder`'s complete addition formulas take without a branch on secret data.
//! No doublings. Affine entries, so that the scan reads two coordinates instead of three:
//! measured on the host (release, 2,000 runs, a loaded machine), k·G took 72 µs against
//! 171 µs with projective entries and 355–473 µs with `primeorder`'s multiplication. The
//! picked point is added as a projective one (z = 1) by the projective addition the
//! variable-base multiplication links anyway: `primeorder`'s mixed addition saves one
//! field multiplication in twelve, but inlined here it was 832 B more image. `p256`'s
//! field has no batched inversion, so the table costs 520 inversions once (about 14 ms on
//! the host).
//!
//! The rest of the signature is what `ecdsa`'s `hazmat::sign_prehashed` does, re-expressed
//! over the table (FIPS 186-5 §6.4.1): a hedged nonce k (below), r = x(k·G) mod n,
//! s = k⁻¹·(z + r·d) mod n. k⁻¹ is `p256`'s constant-time inversion (exponentiation by
//! n − 2). A blinded variable-time one (b·(k·b)⁻¹ for a fresh random b) was measured: 12–17 %
//! more full handshakes per CPU-second in the kernel, but 1,668 B more image, which the TLS
//! size goal does not have to spare (docs/tls.md, "2026-12-04: fixed-base tables"); every handshake
//! figure stays above its goal without it.
//!
//! The nonce is HMAC-SHA256 keyed with d over a label, z, 32 fresh bytes from the
//! generator and a counter, the first output that is a scalar in [1, n−1] (one in 2^32
//! is not: rejection, so no bias). That is RFC 6979's idea (a PRF of the key and the
//! message, so a generator that repeated itself would still never give one k to two
//! messages) with the fresh bytes of its hedged variant, in one HMAC instead of
//! HMAC_DRBG: it is computed by the HMAC the handshake already links (`hash.rs`), where
//! the `rfc6979` crate's HMAC_DRBG was about 1 KB of code of its own.

use alloc::vec::Vec;

use p256::elliptic_curve::group::Group;
use p256::elliptic_curve::ops::Reduce;
use p256::elliptic_curve::point::AffineCoordinates;
use p256::elliptic_curve::subtle::{
    ConditionallyNegatable, ConditionallySelectable, ConstantTimeEq,
};
use p256::elliptic_curve::{Field, PrimeField};
use p256::{AffinePoint, FieldBytes, NonZeroScalar, ProjectivePoint, Scalar, U256};
use rand_core::RngCore;
use sha2::{Digest, Sha256};

/// Radix-16 digits of a scalar below 2^256: 64, and one more for the carry out of the top.
const WINDOWS: usize = 65;
/// Multiples of each window's base in the table: 1·B ..= 8·B (signed digits: -8..=7).
const ENTRIES: usize = 8;

/// The multiples of G, `ENTRIES` per window: entry `i * ENTRIES + j` is (j+1)·16^i·G.
pub(crate) struct Table(Vec<AffinePoint>);

static TABLE: spin::Once<Table> = spin::Once::new();

/// The table, computed at the first call (a key's loading calls it, so no handshake
/// waits for it): 65 × (8 additions and 4 doublings) and 520 inversions.
pub(crate) fn table() -> &'static Table {
    TABLE.call_once(Table::new)
}

impl Table {
    fn new() -> Table {
        let mut points = Vec::with_capacity(WINDOWS * ENTRIES);
        let mut base = ProjectivePoint::GENERATOR;
        for _ in 0..WINDOWS {
            let mut multiple = base;
            for _ in 0..ENTRIES {
                points.push(multiple.to_affine());
                multiple += base;
            }
            base = base.double().double().double().double();
        }
        Table(points)
    }

    /// k·G, in time independent of k.
    pub(crate) fn mul(&self, k: &Scalar) -> ProjectivePoint {
        let bytes = k.to_bytes();
        let mut acc = ProjectivePoint::IDENTITY;
        let mut carry = 0u8;
        for (i, row) in self.0.chunks_exact(ENTRIES).enumerate() {
            // The i-th nibble (little-endian) plus the carry: 0..=16; digits of 8 and more
            // become digit − 16 and carry one into the next window.
            let nibble = if i < 64 {
                (bytes[31 - i / 2] >> (4 * (i % 2))) & 0xf
            } else {
                0
            };
            let value = nibble + carry;
            carry = (value + 8) >> 4;
            let digit = value.wrapping_sub(carry << 4); // as i8: -8..=7
            let negative = digit >> 7;
            let magnitude = (digit ^ 0u8.wrapping_sub(negative)).wrapping_add(negative);
            let mut pick = AffinePoint::IDENTITY;
            for (j, entry) in row.iter().enumerate() {
                pick.conditional_assign(entry, magnitude.ct_eq(&(j as u8 + 1)));
            }
            pick.conditional_negate(negative.into());
            acc += ProjectivePoint::from(pick);
        }
        acc
    }
}

/// Why a signature could not be made: r or s came out zero (probability about 2^-256), or
/// no nonce was found in eight tries (probability 2^-256).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SignFailed;

/// The ECDSA P-256 signature (r, s) of SHA-256(`message`) under the secret `d`.
pub(crate) fn sign(
    d: &NonZeroScalar,
    message: &[u8],
    rng: &mut impl RngCore,
) -> Result<(FieldBytes, FieldBytes), SignFailed> {
    let digest: FieldBytes = Sha256::digest(message);
    let mut extra = FieldBytes::default();
    rng.fill_bytes(&mut extra);
    let k = nonce(d, &digest, &extra).ok_or(SignFailed)?;
    let r_point = table().mul(&k).to_affine();
    let r = <Scalar as Reduce<U256>>::reduce_bytes(&r_point.x());
    let z = <Scalar as Reduce<U256>>::reduce_bytes(&digest);
    let k_inv = Option::<Scalar>::from(k.invert()).ok_or(SignFailed)?;
    let s = k_inv * (z + r * d.as_ref());
    if bool::from(r.is_zero() | s.is_zero()) {
        return Err(SignFailed);
    }
    Ok((r.to_repr(), s.to_repr()))
}

/// The label of the nonce's HMAC input.
const NONCE_LABEL: &[u8] = b"morgana-tls ECDSA P-256 nonce";

/// The hedged nonce: HMAC-SHA256(d, label ‖ z ‖ extra ‖ counter), the first that is a
/// scalar in [1, n−1].
fn nonce(d: &NonZeroScalar, digest: &FieldBytes, extra: &FieldBytes) -> Option<Scalar> {
    use rustls::crypto::hmac::Hmac;
    let mut key = d.to_repr();
    let mac = super::hash::HMAC_SHA256.with_key(&key);
    zeroize::Zeroize::zeroize(&mut key[..]);
    for counter in 0u8..8 {
        let tag = mac.sign_concat(NONCE_LABEL, &[digest, extra], &[counter]);
        let k = Scalar::from_repr(FieldBytes::clone_from_slice(tag.as_ref()));
        if let Some(k) = Option::<Scalar>::from(k).filter(|k| !bool::from(k.is_zero())) {
            return Some(k);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use p256::ecdsa::signature::Verifier;
    use p256::ecdsa::{Signature, SigningKey, VerifyingKey};

    fn scalar(hex: &str) -> Scalar {
        let mut bytes = [0u8; 32];
        for (i, b) in bytes.iter_mut().enumerate() {
            *b = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap();
        }
        Option::from(Scalar::from_repr(bytes.into())).expect("below n")
    }

    /// The table's k·G against `primeorder`'s variable-base k·G, at the edges of the
    /// digit recoding and of the scalar range, and at pseudo-random scalars.
    #[test]
    fn fixed_base_matches_generic_multiplication() {
        let n_minus_1 = "ffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632550";
        let mut ks = Vec::new();
        for hex in [
            "0000000000000000000000000000000000000000000000000000000000000000",
            "0000000000000000000000000000000000000000000000000000000000000001",
            "0000000000000000000000000000000000000000000000000000000000000007",
            "0000000000000000000000000000000000000000000000000000000000000008",
            "0000000000000000000000000000000000000000000000000000000000000009",
            "000000000000000000000000000000000000000000000000000000000000000f",
            "0000000000000000000000000000000000000000000000000000000000000010",
            "0000000000000000000000000000000000000000000000000000000000000088",
            "8000000000000000000000000000000000000000000000000000000000000000",
            "7fffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
            "8888888888888888888888888888888888888888888888888888888888888888",
            "7777777777777777777777777777777777777777777777777777777777777777",
            "f8f8f8f8f8f8f8f8f8f8f8f8f8f8f8f8f8f8f8f8f8f8f8f8f8f8f8f8f8f8f8f8",
            "ffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc63254f",
            n_minus_1,
        ] {
            ks.push(scalar(hex));
        }
        let mut seed = [0u8; 32];
        for i in 0..200u32 {
            seed = Sha256::new_with_prefix(seed)
                .chain_update(i.to_be_bytes())
                .finalize()
                .into();
            ks.push(<Scalar as Reduce<U256>>::reduce_bytes(&seed.into()));
        }
        let table = table();
        for k in ks {
            let expected = (ProjectivePoint::GENERATOR * k).to_affine();
            let got = table.mul(&k).to_affine();
            assert_eq!(got, expected, "k = {:x?}", k.to_bytes());
        }
        // (n−1)·G is −G.
        assert_eq!(
            table.mul(&scalar(n_minus_1)).to_affine(),
            -AffinePoint::GENERATOR
        );
        assert_eq!(table.mul(&Scalar::ZERO), ProjectivePoint::IDENTITY);
    }

    /// Signatures from the table verify under `p256`'s verifier, and a changed message
    /// or signature does not.
    #[test]
    fn signatures_verify() {
        let drbg: &'static super::super::rng::Drbg = alloc::boxed::Box::leak(
            alloc::boxed::Box::new(super::super::rng::Drbg::new([7; 32])),
        );
        let mut rng = drbg.rng();
        for seed in 1..=20u8 {
            let signing = SigningKey::from_bytes(&[seed; 32].into()).unwrap();
            let verifying = VerifyingKey::from(&signing);
            let message = [seed; 100];
            let (r, s) = sign(signing.as_nonzero_scalar(), &message, &mut rng).unwrap();
            let sig = Signature::from_scalars(r, s).unwrap();
            verifying.verify(&message, &sig).unwrap();
            assert!(verifying.verify(&message[1..], &sig).is_err());
            let other = Signature::from_scalars(s, r).unwrap();
            assert!(verifying.verify(&message, &other).is_err());
        }
    }

    /// The nonce is HMAC-SHA256(d, label ‖ z ‖ extra ‖ 0) (computed here with the `hmac`
    /// crate directly), and it changes with the message, the key and the fresh bytes.
    #[test]
    fn nonce_is_the_hmac_of_key_message_and_fresh_bytes() {
        use hmac::Mac;
        let d = NonZeroScalar::new(scalar(
            "c9afa9d845ba75166b5c215767b1d6934e50c3db36e89b127b8a622b120f6721",
        ))
        .unwrap();
        let z: FieldBytes = Sha256::digest(b"sample");
        let extra = FieldBytes::from([5u8; 32]);
        let mut mac = <hmac::Hmac<Sha256> as Mac>::new_from_slice(&d.to_repr()).unwrap();
        mac.update(NONCE_LABEL);
        mac.update(&z);
        mac.update(&extra);
        mac.update(&[0]);
        let expected = mac.finalize().into_bytes();
        let k = nonce(&d, &z, &extra).unwrap();
        assert_eq!(k.to_repr(), expected);
        let other_z: FieldBytes = Sha256::digest(b"test");
        assert_ne!(nonce(&d, &other_z, &extra).unwrap(), k);
        assert_ne!(nonce(&d, &z, &FieldBytes::from([6u8; 32])).unwrap(), k);
        let other_d = NonZeroScalar::new(Scalar::ONE).unwrap();
        assert_ne!(nonce(&other_d, &z, &extra).unwrap(), k);
    }

    /// The heap the table takes, as docs/tls.md states it.
    #[test]
    fn table_bytes() {
        assert_eq!(table().0.len(), WINDOWS * ENTRIES);
        let bytes = table().0.capacity() * core::mem::size_of::<AffinePoint>();
        assert_eq!(bytes, 37_440);
    }
}
