//! The framing of protocol messages: pure data, apart from the code that sends them.
//!
//! Every message of a protocol step is one frame: an 8-byte header (the step's tag and
//! the payload length in 64-bit words, both `u32` little-endian) followed by the payload
//! words, little-endian. Both parties know what the step sends, so the header is not
//! needed to parse; it is there to catch two parties that are out of step (different
//! programs, different shapes) at the first message instead of computing garbage.

/// Header length in bytes.
pub const HEADER_LEN: usize = 8;

/// The tag of each protocol step.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[repr(u32)]
pub enum Tag {
    /// Beaver multiplication: the masked operands.
    Mul = 1,
    /// Matrix Beaver product: the masked matrices.
    Matmul = 2,
    /// Dealer-assisted truncation: the masked value.
    Trunc = 3,
    /// Binary AND gates: the masked bit words.
    And = 4,
    /// Bit injection (XOR to arithmetic): the masked bits.
    BitToArith = 5,
    /// Opening a shared value to both parties (public results only).
    Open = 6,
    /// The servers' handshake before a job: protocol version, job digest, checkpoints.
    Hello = 7,
    /// An FSS gate's input masked by the dealer's fresh mask (`x + r_in`).
    MaskedInput = 8,
    /// A convolution product on a convolution triple: the masked image and the masked
    /// other factor (kernel or output gradient).
    Conv = 9,
    /// A dense layer's backward pass: the output gradient masked by the dealer's fresh
    /// `D` (the forward's masked operands are reused, not sent again).
    DenseBackward = 10,
    /// A convolution's backward pass: the transposed output gradient masked by the
    /// dealer's fresh `D` (the forward's masked image and kernel are reused).
    ConvBackward = 11,
}

impl Tag {
    /// Every tag, in the order of their values.
    pub const ALL: [Tag; 11] = [
        Tag::Mul,
        Tag::Matmul,
        Tag::Trunc,
        Tag::And,
        Tag::BitToArith,
        Tag::Open,
        Tag::Hello,
        Tag::MaskedInput,
        Tag::Conv,
        Tag::DenseBackward,
        Tag::ConvBackward,
    ];

    /// The step's short name, for tallies (`ringnn cost`'s `online_bytes_by_step`).
    pub fn name(self) -> &'static str {
        match self {
            Tag::Mul => "mul",
            Tag::Matmul => "matmul",
            Tag::Trunc => "trunc",
            Tag::And => "and",
            Tag::BitToArith => "bit_to_arith",
            Tag::Open => "open",
            Tag::Hello => "hello",
            Tag::MaskedInput => "masked_input",
            Tag::Conv => "conv",
            Tag::DenseBackward => "dense_backward",
            Tag::ConvBackward => "conv_backward",
        }
    }
}

/// A frame header.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Header {
    /// The step's tag ([`Tag`] as `u32`; unknown values are kept, for error messages).
    pub tag: u32,
    /// Payload length in 64-bit words.
    pub words: u32,
}

impl Header {
    /// The header bytes.
    pub fn emit(&self) -> [u8; HEADER_LEN] {
        let mut b = [0u8; HEADER_LEN];
        b[..4].copy_from_slice(&self.tag.to_le_bytes());
        b[4..].copy_from_slice(&self.words.to_le_bytes());
        b
    }

    /// Reads a header (every byte pattern is a header; validation is the caller's).
    pub fn parse(b: &[u8; HEADER_LEN]) -> Header {
        Header {
            tag: u32::from_le_bytes([b[0], b[1], b[2], b[3]]),
            words: u32::from_le_bytes([b[4], b[5], b[6], b[7]]),
        }
    }
}

/// Appends `words` little-endian to `out`.
pub fn emit_words(words: &[u64], out: &mut Vec<u8>) {
    out.reserve(8 * words.len());
    for w in words {
        out.extend_from_slice(&w.to_le_bytes());
    }
}

/// Reads `out.len()` little-endian words from `bytes`.
///
/// # Panics
/// If `bytes` is not exactly `8 * out.len()` long (the caller sizes both).
pub fn parse_words(bytes: &[u8], out: &mut [u64]) {
    assert_eq!(bytes.len(), 8 * out.len(), "parse_words: length mismatch");
    for (o, c) in out.iter_mut().zip(bytes.chunks_exact(8)) {
        *o = u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_bytes() {
        let h = Header {
            tag: Tag::Trunc as u32,
            words: 0x0102_0304,
        };
        let b = h.emit();
        assert_eq!(b, [3, 0, 0, 0, 4, 3, 2, 1]);
        assert_eq!(Header::parse(&b), h);
    }

    #[test]
    fn words_round_trip_little_endian() {
        let mut out = Vec::new();
        emit_words(&[1, 0x8000_0000_0000_00ff], &mut out);
        assert_eq!(out, [1, 0, 0, 0, 0, 0, 0, 0, 0xff, 0, 0, 0, 0, 0, 0, 0x80]);
        let mut back = [0u64; 2];
        parse_words(&out, &mut back);
        assert_eq!(back, [1, 0x8000_0000_0000_00ff]);
    }

    #[test]
    #[should_panic(expected = "length mismatch")]
    fn short_payload_is_a_caller_bug() {
        parse_words(&[0u8; 7], &mut [0u64; 1]);
    }
}
