//! Just enough DER to read a certificate's serial, subject and URI subject alternative names.
//! Every read is bounds-checked; malformed input is an error, never a panic. (The chain and
//! signatures are verified by webpki, not here.)

/// A value read from a subject attribute.
pub enum DnString {
    /// UTF8String.
    Utf8(String),
    /// PrintableString.
    Printable(String),
}

const SEQUENCE: u8 = 0x30;
const SET: u8 = 0x31;
const OID: u8 = 0x06;
const OCTET_STRING: u8 = 0x04;
const BOOLEAN: u8 = 0x01;
const INTEGER: u8 = 0x02;
const UTF8_STRING: u8 = 0x0c;
const PRINTABLE_STRING: u8 = 0x13;
const VERSION: u8 = 0xa0;
const EXTENSIONS: u8 = 0xa3;
const URI: u8 = 0x86;
/// 2.5.29.17, subjectAltName.
const SAN_OID: &[u8] = &[0x55, 0x1d, 0x11];

/// One tag-length-value: (tag, contents, what follows).
fn tlv(input: &[u8]) -> Result<(u8, &[u8], &[u8]), String> {
    let (&tag, rest) = input.split_first().ok_or("truncated: no tag")?;
    if tag & 0x1f == 0x1f {
        return Err("multi-byte tags are not used in certificates".into());
    }
    let (&first, rest) = rest.split_first().ok_or("truncated: no length")?;
    let (len, rest) = if first < 0x80 {
        (first as usize, rest)
    } else {
        let n = (first & 0x7f) as usize;
        if n == 0 || n > 4 || rest.len() < n {
            return Err("bad length".into());
        }
        let len = rest[..n].iter().fold(0usize, |acc, &b| (acc << 8) | b as usize);
        (len, &rest[n..])
    };
    if rest.len() < len {
        return Err(format!("truncated: {len} bytes declared, {} left", rest.len()));
    }
    Ok((tag, &rest[..len], &rest[len..]))
}

fn expect(input: &[u8], want: u8) -> Result<(&[u8], &[u8]), String> {
    let (tag, contents, rest) = tlv(input)?;
    if tag != want {
        return Err(format!("expected tag {want:#04x}, found {tag:#04x}"));
    }
    Ok((contents, rest))
}

/// The TBSCertificate's fields up to and including the subject: (subject, what follows).
fn to_subject(cert: &[u8]) -> Result<(&[u8], &[u8]), String> {
    let (cert, _) = expect(cert, SEQUENCE)?;
    let (tbs, _) = expect(cert, SEQUENCE)?;
    let mut rest = tbs;
    if rest.first() == Some(&VERSION) {
        rest = tlv(rest)?.2;
    }
    // serial, signature algorithm, issuer, validity
    for _ in 0..4 {
        rest = tlv(rest)?.2;
    }
    expect(rest, SEQUENCE)
}

/// The certificate's serial number: the INTEGER's content bytes, as encoded.
pub fn serial(cert: &[u8]) -> Result<Vec<u8>, String> {
    let (cert, _) = expect(cert, SEQUENCE)?;
    let (tbs, _) = expect(cert, SEQUENCE)?;
    let mut rest = tbs;
    if rest.first() == Some(&VERSION) {
        rest = tlv(rest)?.2;
    }
    let (serial, _) = expect(rest, INTEGER)?;
    Ok(serial.to_vec())
}

/// The subject's attributes, in order: (OID arcs, string value).
pub fn subject(cert: &[u8]) -> Result<Vec<(Vec<u64>, DnString)>, String> {
    let (mut rdns, _) = to_subject(cert)?;
    let mut out = Vec::new();
    while !rdns.is_empty() {
        let (mut set, rest) = expect(rdns, SET)?;
        rdns = rest;
        while !set.is_empty() {
            let (atv, rest) = expect(set, SEQUENCE)?;
            set = rest;
            let (oid, value) = expect(atv, OID)?;
            let (tag, text, _) = tlv(value)?;
            let text = std::str::from_utf8(text)
                .map_err(|_| "a subject attribute is not UTF-8".to_string())?
                .to_string();
            let value = match tag {
                UTF8_STRING => DnString::Utf8(text),
                PRINTABLE_STRING => DnString::Printable(text),
                other => {
                    return Err(format!(
                        "subject attribute string type {other:#04x} is not supported"
                    ))
                }
            };
            out.push((oid_arcs(oid)?, value));
        }
    }
    Ok(out)
}

fn oid_arcs(oid: &[u8]) -> Result<Vec<u64>, String> {
    let mut arcs = Vec::new();
    let mut acc: u64 = 0;
    for (i, &b) in oid.iter().enumerate() {
        if acc > (u64::MAX >> 7) {
            return Err("OID arc too large".into());
        }
        acc = (acc << 7) | u64::from(b & 0x7f);
        if b & 0x80 == 0 {
            if arcs.is_empty() {
                let first = (acc / 40).min(2);
                arcs.push(first);
                arcs.push(acc - first * 40);
            } else {
                arcs.push(acc);
            }
            acc = 0;
        } else if i + 1 == oid.len() {
            return Err("truncated OID".into());
        }
    }
    if arcs.is_empty() {
        return Err("empty OID".into());
    }
    Ok(arcs)
}

/// Every URI in the subjectAltName extension (none if there is no such extension).
pub fn san_uris(cert: &[u8]) -> Result<Vec<String>, String> {
    let (_, mut rest) = to_subject(cert)?;
    rest = tlv(rest)?.2; // subjectPublicKeyInfo
    let mut uris = Vec::new();
    while !rest.is_empty() {
        let (tag, contents, next) = tlv(rest)?;
        rest = next;
        if tag != EXTENSIONS {
            continue;
        }
        let (mut exts, _) = expect(contents, SEQUENCE)?;
        while !exts.is_empty() {
            let (ext, next) = expect(exts, SEQUENCE)?;
            exts = next;
            let (oid, mut body) = expect(ext, OID)?;
            if body.first() == Some(&BOOLEAN) {
                body = tlv(body)?.2;
            }
            let (value, _) = expect(body, OCTET_STRING)?;
            if oid != SAN_OID {
                continue;
            }
            let (mut names, _) = expect(value, SEQUENCE)?;
            while !names.is_empty() {
                let (tag, name, next) = tlv(names)?;
                names = next;
                if tag == URI {
                    let uri = std::str::from_utf8(name).map_err(|_| "a URI is not ASCII".to_string())?;
                    uris.push(uri.to_string());
                }
            }
        }
    }
    Ok(uris)
}
