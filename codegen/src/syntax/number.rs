//! What a number token means, read as a given type: the rules of the `ron` crate
//! (0.12), so that appliance.ron accepts and rejects exactly the numbers `ron` does.
//!
//! - Integers: an optional sign, an optional base prefix (`0b`, `0o`, `0x`), digits and
//!   `_` (not first), and an optional suffix `i8`..`i64`, `u8`..`u64` that must name the
//!   type the value is read as (`8080u16` is a `u16`; it is not a `u32`). A value that
//!   does not fit the type is an error.
//! - Floats: digits, `.`, an exponent (`e`/`E`, optional sign), `_` after a digit or the
//!   exponent mark, an optional suffix `f32`/`f64`; also `inf`, `NaN` with a sign.
//! - A value of no particular type (an application constant in `config`) is read as the
//!   smallest integer type that holds it, or as a float when it has a float's
//!   characters or overflows 64 bits; a suffix fixes the type.

/// An integer type a key can have.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IntType {
    /// `i8`.
    I8,
    /// `i16`.
    I16,
    /// `i32`.
    I32,
    /// `i64` (and `isize`).
    I64,
    /// `u8`.
    U8,
    /// `u16`.
    U16,
    /// `u32`.
    U32,
    /// `u64` (and `usize`).
    U64,
}

impl IntType {
    /// The type serde reads a Rust integer type as (`usize` is read as `u64`).
    pub fn of_rust(name: &str) -> Option<IntType> {
        Some(match name {
            "i8" => IntType::I8,
            "i16" => IntType::I16,
            "i32" => IntType::I32,
            "i64" | "isize" => IntType::I64,
            "u8" => IntType::U8,
            "u16" => IntType::U16,
            "u32" => IntType::U32,
            "u64" | "usize" => IntType::U64,
            _ => return None,
        })
    }

    /// The suffix naming this type.
    pub fn suffix(self) -> &'static str {
        match self {
            IntType::I8 => "i8",
            IntType::I16 => "i16",
            IntType::I32 => "i32",
            IntType::I64 => "i64",
            IntType::U8 => "u8",
            IntType::U16 => "u16",
            IntType::U32 => "u32",
            IntType::U64 => "u64",
        }
    }

    /// Smallest and largest value.
    pub fn range(self) -> (i128, i128) {
        match self {
            IntType::I8 => (i8::MIN.into(), i8::MAX.into()),
            IntType::I16 => (i16::MIN.into(), i16::MAX.into()),
            IntType::I32 => (i32::MIN.into(), i32::MAX.into()),
            IntType::I64 => (i64::MIN.into(), i64::MAX.into()),
            IntType::U8 => (0, u8::MAX.into()),
            IntType::U16 => (0, u16::MAX.into()),
            IntType::U32 => (0, u32::MAX.into()),
            IntType::U64 => (0, u64::MAX.into()),
        }
    }

    const ALL: [IntType; 8] = [
        IntType::I8,
        IntType::I16,
        IntType::I32,
        IntType::I64,
        IntType::U8,
        IntType::U16,
        IntType::U32,
        IntType::U64,
    ];
}

/// A float type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FloatType {
    /// `f32`.
    F32,
    /// `f64`.
    F64,
}

/// A number read without a type: what `ron`'s `Value` would hold.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum AnyNumber {
    /// An integer of the given type (the suffix's, else the smallest that holds it).
    Int(i128, IntType),
    /// A float of the given type.
    Float(f64, FloatType),
}

/// Why a number token is not a number of the wanted type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NumberError {
    /// Not digits where digits belong (`8080px`, `0x`, `1.5` as an integer).
    Malformed,
    /// A digit the base does not have (`0b102`, `12ab`).
    Digit(char, u32),
    /// `_` right after the sign or base prefix.
    LeadingUnderscore,
    /// Too large or too small for the type.
    OutOfRange(IntType),
    /// The suffix names another type than the value is read as.
    WrongSuffix {
        /// What the suffix says.
        written: String,
        /// What the value is read as.
        wanted: &'static str,
    },
}

fn is_int_char(c: char) -> bool {
    c.is_ascii_hexdigit() || c == '_'
}

fn is_float_char(c: char) -> bool {
    c.is_ascii_digit() || matches!(c, 'e' | 'E' | '.' | '+' | '-' | '_')
}

fn run_len(s: &str, f: fn(char) -> bool) -> usize {
    s.find(|c| !f(c)).unwrap_or(s.len())
}

/// Whether the token would be read as a float when no type is asked for.
pub fn looks_like_float(text: &str) -> bool {
    let body = text.strip_prefix(['+', '-']).unwrap_or(text);
    if matches!(
        body.trim_end_matches(['f', '3', '2', '6', '4']),
        "inf" | "NaN"
    ) {
        return true;
    }
    float_run(body) > run_len(body, is_int_char)
}

/// Length of the float characters at the start of `s`, cut before a `..`.
fn float_run(s: &str) -> usize {
    let raw = run_len(s, is_float_char);
    s[..raw].find("..").unwrap_or(raw)
}

/// Parses `digits` (digits and `_`) in `base` as `ty`, with `negative` sign; returns
/// the value, or the error and how far parsing got.
fn digits_as(digits: &str, base: u32, negative: bool, ty: IntType) -> Result<i128, NumberError> {
    if digits.is_empty() {
        return Err(NumberError::Malformed);
    }
    if digits.starts_with('_') {
        return Err(NumberError::LeadingUnderscore);
    }
    let (min, max) = ty.range();
    let mut acc: i128 = 0;
    for c in digits.chars() {
        if c == '_' {
            continue;
        }
        // `ron` multiplies before it looks at the digit: an overflow is found first.
        acc = acc
            .checked_mul(i128::from(base))
            .filter(|v| (min..=max).contains(v))
            .ok_or(NumberError::OutOfRange(ty))?;
        let d = c.to_digit(16).ok_or(NumberError::Digit(c, base))?;
        if d >= base {
            return Err(NumberError::Digit(c, base));
        }
        acc = if negative {
            acc - i128::from(d)
        } else {
            acc + i128::from(d)
        };
        if !(min..=max).contains(&acc) {
            return Err(NumberError::OutOfRange(ty));
        }
    }
    Ok(acc)
}

/// Sign, base and the rest of an integer token.
fn split_integer(text: &str) -> (bool, u32, &str) {
    let (negative, rest) = match text.as_bytes().first() {
        Some(b'+') => (false, &text[1..]),
        Some(b'-') => (true, &text[1..]),
        _ => (false, text),
    };
    for (prefix, base) in [("0b", 2), ("0o", 8), ("0x", 16)] {
        if let Some(r) = rest.strip_prefix(prefix) {
            return (negative, base, r);
        }
    }
    (negative, 10, rest)
}

/// The token read as an integer of type `want` (`ron`'s `Parser::integer`).
pub fn integer(text: &str, want: IntType) -> Result<i128, NumberError> {
    let (negative, base, rest) = split_integer(text);
    let n = run_len(rest, is_int_char);
    let (digits, tail) = rest.split_at(n);
    if tail.starts_with(['i', 'u'])
        && let Some(ty) = IntType::ALL.iter().find(|t| t.suffix() == tail)
    {
        let v = digits_as(digits, base, negative, *ty)?;
        if *ty != want {
            return Err(NumberError::WrongSuffix {
                written: ty.suffix().to_string(),
                wanted: want.suffix(),
            });
        }
        return Ok(v);
    }
    let v = digits_as(digits, base, negative, want)?;
    if tail.is_empty() {
        Ok(v)
    } else {
        Err(NumberError::Malformed)
    }
}

/// Removes the `_` that a float may hold; `None` if one is misplaced.
fn float_digits(body: &str) -> Option<String> {
    let mut out = String::with_capacity(body.len());
    let mut allow_underscore = false;
    for c in body.chars() {
        match c {
            '_' if allow_underscore => continue,
            '_' => return None,
            '0'..='9' | 'e' | 'E' => allow_underscore = true,
            '.' => allow_underscore = false,
            _ => {}
        }
        out.push(c);
    }
    Some(out)
}

/// The token read as a float of no fixed type (`ron`'s `Parser::float::<ParsedFloat>`):
/// `f32` when the value is exactly an `f32`, else `f64`, or the suffix's type.
fn float_any(text: &str) -> Result<(f64, FloatType), NumberError> {
    for (lit, v) in [
        ("inf", f64::INFINITY),
        ("+inf", f64::INFINITY),
        ("-inf", f64::NEG_INFINITY),
        ("NaN", f64::NAN),
        ("+NaN", f64::NAN),
        ("-NaN", -f64::NAN),
    ] {
        if text == lit {
            return Ok((v, FloatType::F32));
        }
        if let Some(suffix) = text.strip_prefix(lit) {
            match suffix {
                "f32" => return Ok((v, FloatType::F32)),
                "f64" => return Ok((v, FloatType::F64)),
                _ => {}
            }
        }
    }
    let n = float_run(text);
    if n == 0 {
        return Err(NumberError::Malformed);
    }
    if text.starts_with('_') {
        return Err(NumberError::LeadingUnderscore);
    }
    let digits = float_digits(&text[..n]).ok_or(NumberError::Malformed)?;
    match &text[n..] {
        "" => {
            let v: f64 = digits.parse().map_err(|_| NumberError::Malformed)?;
            let ty = if v.total_cmp(&f64::from(v as f32)).is_eq() {
                FloatType::F32
            } else {
                FloatType::F64
            };
            Ok((v, ty))
        }
        "f32" => digits
            .parse::<f32>()
            .map(|v| (f64::from(v), FloatType::F32))
            .map_err(|_| NumberError::Malformed),
        "f64" => digits
            .parse::<f64>()
            .map(|v| (v, FloatType::F64))
            .map_err(|_| NumberError::Malformed),
        _ => Err(NumberError::Malformed),
    }
}

/// The token read as an integer of no fixed type (`ron`'s `Parser::integer::<ParsedInteger>`):
/// the suffix's type, else the smallest type that holds it.
fn integer_any(text: &str) -> Result<(i128, IntType), NumberError> {
    let (negative, base, rest) = split_integer(text);
    let n = run_len(rest, is_int_char);
    let (digits, tail) = rest.split_at(n);
    if tail.starts_with(['i', 'u'])
        && let Some(ty) = IntType::ALL.iter().find(|t| t.suffix() == tail)
    {
        return digits_as(digits, base, negative, *ty).map(|v| (v, *ty));
    }
    let wide = if negative { IntType::I64 } else { IntType::U64 };
    let v = digits_as(digits, base, negative, wide)?;
    if !tail.is_empty() {
        return Err(NumberError::Malformed);
    }
    let smallest = [
        IntType::I8,
        IntType::I16,
        IntType::I32,
        IntType::U8,
        IntType::U16,
        IntType::U32,
    ]
    .into_iter()
    .filter(|t| (t.range().0 < 0) == negative)
    .find(|t| (t.range().0..=t.range().1).contains(&v));
    Ok((v, smallest.unwrap_or(wide)))
}

/// The token read as a number of no fixed type (`ron`'s `Parser::any_number`).
pub fn any(text: &str) -> Result<AnyNumber, NumberError> {
    let body = text.strip_prefix(['+', '-']).unwrap_or(text);
    if float_run(body) > run_len(body, is_int_char) {
        return float_any(text).map(|(v, t)| AnyNumber::Float(v, t));
    }
    match integer_any(text) {
        Ok((v, t)) => Ok(AnyNumber::Int(v, t)),
        // What is not an integer (too large, `12e3`, `-inf`) may still be a float.
        Err(e) => float_any(text)
            .map(|(v, t)| AnyNumber::Float(v, t))
            .map_err(|_| e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_follow_ron() {
        assert_eq!(integer("8080", IntType::U16), Ok(8080));
        assert_eq!(integer("+0x1F_90", IntType::U16), Ok(8080));
        assert_eq!(integer("8080u16", IntType::U16), Ok(8080));
        assert!(matches!(
            integer("8080u32", IntType::U16),
            Err(NumberError::WrongSuffix { .. })
        ));
        assert_eq!(
            integer("70000", IntType::U16),
            Err(NumberError::OutOfRange(IntType::U16))
        );
        assert_eq!(integer("-0", IntType::U16), Ok(0));
        assert_eq!(
            integer("-1", IntType::U8),
            Err(NumberError::OutOfRange(IntType::U8))
        );
        assert_eq!(
            integer("0x_1", IntType::U8),
            Err(NumberError::LeadingUnderscore)
        );
        assert_eq!(
            integer("12ab", IntType::U64),
            Err(NumberError::Digit('a', 10))
        );
        assert_eq!(integer("1.5", IntType::U64), Err(NumberError::Malformed));
        assert_eq!(integer("0x", IntType::U64), Err(NumberError::Malformed));
        assert_eq!(integer("5usize", IntType::U64), Err(NumberError::Malformed));
    }

    #[test]
    fn untyped_numbers_follow_ron() {
        assert_eq!(any("5"), Ok(AnyNumber::Int(5, IntType::U8)));
        assert_eq!(any("-3"), Ok(AnyNumber::Int(-3, IntType::I8)));
        assert_eq!(any("70000"), Ok(AnyNumber::Int(70000, IntType::U32)));
        assert_eq!(any("5u64"), Ok(AnyNumber::Int(5, IntType::U64)));
        assert_eq!(any("0.5"), Ok(AnyNumber::Float(0.5, FloatType::F32)));
        assert_eq!(any("0.1"), Ok(AnyNumber::Float(0.1, FloatType::F64)));
        assert_eq!(any("12e3"), Ok(AnyNumber::Float(12000.0, FloatType::F32)));
        assert_eq!(any(".5"), Ok(AnyNumber::Float(0.5, FloatType::F32)));
        assert_eq!(any("1_000.5"), Ok(AnyNumber::Float(1000.5, FloatType::F32)));
        assert_eq!(any("1.5f64"), Ok(AnyNumber::Float(1.5, FloatType::F64)));
        assert!(matches!(
            any("18446744073709551616"),
            Ok(AnyNumber::Float(_, FloatType::F32))
        ));
        assert!(any("1..2").is_err());
        assert!(any("8080px").is_err());
        assert!(matches!(any("-inf"), Ok(AnyNumber::Float(v, _)) if v == f64::NEG_INFINITY));
    }
}
