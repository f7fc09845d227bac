//! A reader for SentencePiece model files (`spiece.model`: a serialized `sentencepiece.ModelProto`), for building the
//! tokenizer of checkpoints that have no `tokenizer.json` (see [`crate::tokenizer::Tokenizer::from_spiece`],
//! [`crate::tokenizer::spiece`]).
//!
//! This is a file-format reader only: it decodes the few protobuf fields that transformers' converter reads
//! (`sentencepiece_model.proto`, field numbers in brackets) and does no tokenizing itself.
//!
//! ```text
//! ModelProto      pieces [1] (repeated SentencePiece), trainer_spec [2], normalizer_spec [3]
//! SentencePiece   piece [1] string, score [2] float, type [3] enum (NORMAL 1, UNKNOWN 2, CONTROL 3,
//!                 USER_DEFINED 4, UNUSED 5, BYTE 6; default NORMAL)
//! TrainerSpec     model_type [3] (UNIGRAM 1, BPE 2, WORD 3, CHAR 4; default UNIGRAM), vocab_size [4],
//!                 byte_fallback [35], unk_id [40] (default 0), bos_id [41] (1), eos_id [42] (2), pad_id [43] (-1),
//!                 unk_piece [45], bos_piece [46], eos_piece [47], pad_piece [48]
//! NormalizerSpec  name [1], precompiled_charsmap [2] bytes, add_dummy_prefix [3] (default true),
//!                 remove_extra_whitespaces [4] (true), escape_whitespaces [5] (true)
//! ```
//!
//! Every other field is skipped by its wire type. Anything malformed — a truncated varint or length, a length past
//! the end of its message, a known field with the wrong wire type, a group or unknown wire type, a string that is
//! not UTF-8, a missing `trainer_spec` / `normalizer_spec` (a file cut at a field boundary), no pieces, an empty
//! piece, a NaN score, an out-of-range `unk_id`, or a `precompiled_charsmap` that would make the normalizer index
//! out of bounds — is a [`T5Error::Tokenizer`], never a panic.

use crate::error::{Result, T5Error};

/// `SentencePiece.Type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PieceType {
    Normal,
    Unknown,
    Control,
    UserDefined,
    Unused,
    Byte,
}

impl PieceType {
    fn from_proto(v: i32) -> Result<Self> {
        Ok(match v {
            1 => PieceType::Normal,
            2 => PieceType::Unknown,
            3 => PieceType::Control,
            4 => PieceType::UserDefined,
            5 => PieceType::Unused,
            6 => PieceType::Byte,
            _ => return Err(err(format!("piece type {v} is not a SentencePiece.Type"))),
        })
    }
}

/// One `ModelProto.pieces` entry.
#[derive(Debug, Clone, PartialEq)]
pub struct Piece {
    pub piece: String,
    pub score: f32,
    pub kind: PieceType,
}

/// The `TrainerSpec` fields the tokenizer needs (defaults as in `sentencepiece_model.proto`).
#[derive(Debug, Clone, PartialEq)]
pub struct TrainerSpec {
    /// 1 UNIGRAM, 2 BPE, 3 WORD, 4 CHAR
    pub model_type: i32,
    pub vocab_size: i32,
    pub byte_fallback: bool,
    pub unk_id: i32,
    pub bos_id: i32,
    pub eos_id: i32,
    pub pad_id: i32,
    pub unk_piece: String,
    pub bos_piece: String,
    pub eos_piece: String,
    pub pad_piece: String,
}

impl Default for TrainerSpec {
    fn default() -> Self {
        TrainerSpec {
            model_type: 1,
            vocab_size: 8000,
            byte_fallback: false,
            unk_id: 0,
            bos_id: 1,
            eos_id: 2,
            pad_id: -1,
            unk_piece: "<unk>".into(),
            bos_piece: "<s>".into(),
            eos_piece: "</s>".into(),
            pad_piece: "<pad>".into(),
        }
    }
}

/// The `NormalizerSpec` fields the tokenizer needs (defaults as in `sentencepiece_model.proto`).
#[derive(Debug, Clone, PartialEq)]
pub struct NormalizerSpec {
    pub name: String,
    /// SentencePiece's compiled normalization rules (a Darts double-array trie + the replacement strings), the
    /// input of `tokenizers`' `Precompiled` normalizer; empty when the model has none.
    pub precompiled_charsmap: Vec<u8>,
    pub add_dummy_prefix: bool,
    pub remove_extra_whitespaces: bool,
    pub escape_whitespaces: bool,
}

impl Default for NormalizerSpec {
    fn default() -> Self {
        NormalizerSpec {
            name: String::new(),
            precompiled_charsmap: Vec::new(),
            add_dummy_prefix: true,
            remove_extra_whitespaces: true,
            escape_whitespaces: true,
        }
    }
}

/// The parts of a SentencePiece `ModelProto` that building a tokenizer needs.
#[derive(Debug, Clone, PartialEq)]
pub struct SpModel {
    pub pieces: Vec<Piece>,
    pub trainer_spec: TrainerSpec,
    pub normalizer_spec: NormalizerSpec,
}

pub(crate) fn err(msg: impl std::fmt::Display) -> T5Error {
    T5Error::Tokenizer(format!("spiece.model: {msg}"))
}

// ---------------------------------------------------------------------------------------------------------------
// protobuf wire format

const VARINT: u8 = 0;
const FIXED64: u8 = 1;
const LEN: u8 = 2;
const FIXED32: u8 = 5;

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    /// the message being read, for error messages
    what: &'static str,
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8], what: &'static str) -> Self {
        Reader { buf, pos: 0, what }
    }

    fn done(&self) -> bool {
        self.pos >= self.buf.len()
    }

    fn truncated(&self) -> T5Error {
        err(format!("truncated {} (at byte {} of {})", self.what, self.pos, self.buf.len()))
    }

    fn varint(&mut self) -> Result<u64> {
        let mut v: u64 = 0;
        for i in 0..10 {
            let b = *self.buf.get(self.pos).ok_or_else(|| self.truncated())?;
            self.pos += 1;
            if i == 9 && b > 1 {
                return Err(err(format!("varint longer than 64 bits in {}", self.what)));
            }
            v |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(err(format!("varint longer than 10 bytes in {}", self.what)))
    }

    /// (field number, wire type)
    fn key(&mut self) -> Result<(u32, u8)> {
        let k = self.varint()?;
        let field = k >> 3;
        if field == 0 || field > (1 << 29) - 1 {
            return Err(err(format!("invalid field number {field} in {}", self.what)));
        }
        Ok((field as u32, (k & 7) as u8))
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.buf.len()).ok_or_else(|| self.truncated())?;
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn len_delimited(&mut self) -> Result<&'a [u8]> {
        let n = self.varint()?;
        let n = usize::try_from(n).map_err(|_| self.truncated())?;
        self.take(n)
    }

    fn skip(&mut self, wire: u8) -> Result<()> {
        match wire {
            VARINT => self.varint().map(|_| ()),
            FIXED64 => self.take(8).map(|_| ()),
            LEN => self.len_delimited().map(|_| ()),
            FIXED32 => self.take(4).map(|_| ()),
            // 3/4: the deprecated groups, which sentencepiece_model.proto does not use
            w => Err(err(format!("unsupported wire type {w} in {}", self.what))),
        }
    }

    /// Check the wire type of a known field.
    fn expect(&self, field: u32, wire: u8, want: u8) -> Result<()> {
        if wire == want {
            Ok(())
        } else {
            Err(err(format!("field {field} of {} has wire type {wire}, expected {want}", self.what)))
        }
    }

    fn int32(&mut self) -> Result<i32> {
        // int32 / enum: negative values are sign-extended to 64 bits; the low 32 bits are the value
        Ok(self.varint()? as i64 as i32)
    }

    fn bool(&mut self) -> Result<bool> {
        Ok(self.varint()? != 0)
    }

    fn float(&mut self) -> Result<f32> {
        let b = self.take(4)?;
        Ok(f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn string(&mut self, field: &str) -> Result<String> {
        let b = self.len_delimited()?;
        String::from_utf8(b.to_vec()).map_err(|_| err(format!("{}.{field} is not UTF-8", self.what)))
    }
}

fn parse_piece(buf: &[u8]) -> Result<Piece> {
    let mut r = Reader::new(buf, "SentencePiece");
    let mut p = Piece { piece: String::new(), score: 0.0, kind: PieceType::Normal };
    while !r.done() {
        let (field, wire) = r.key()?;
        match field {
            1 => {
                r.expect(field, wire, LEN)?;
                p.piece = r.string("piece")?;
            }
            2 => {
                r.expect(field, wire, FIXED32)?;
                p.score = r.float()?;
            }
            3 => {
                r.expect(field, wire, VARINT)?;
                p.kind = PieceType::from_proto(r.int32()?)?;
            }
            _ => r.skip(wire)?,
        }
    }
    Ok(p)
}

/// Merge the fields of one serialized `TrainerSpec` into `t` (protobuf merges repeated occurrences).
fn parse_trainer_spec(buf: &[u8], t: &mut TrainerSpec) -> Result<()> {
    let mut r = Reader::new(buf, "TrainerSpec");
    while !r.done() {
        let (field, wire) = r.key()?;
        match field {
            3 | 4 | 35 | 40..=43 => {
                r.expect(field, wire, VARINT)?;
                match field {
                    3 => t.model_type = r.int32()?,
                    4 => t.vocab_size = r.int32()?,
                    35 => t.byte_fallback = r.bool()?,
                    40 => t.unk_id = r.int32()?,
                    41 => t.bos_id = r.int32()?,
                    42 => t.eos_id = r.int32()?,
                    _ => t.pad_id = r.int32()?,
                }
            }
            45..=48 => {
                r.expect(field, wire, LEN)?;
                let s = r.string("*_piece")?;
                match field {
                    45 => t.unk_piece = s,
                    46 => t.bos_piece = s,
                    47 => t.eos_piece = s,
                    _ => t.pad_piece = s,
                }
            }
            _ => r.skip(wire)?,
        }
    }
    Ok(())
}

fn parse_normalizer_spec(buf: &[u8], n: &mut NormalizerSpec) -> Result<()> {
    let mut r = Reader::new(buf, "NormalizerSpec");
    while !r.done() {
        let (field, wire) = r.key()?;
        match field {
            1 => {
                r.expect(field, wire, LEN)?;
                n.name = r.string("name")?;
            }
            2 => {
                r.expect(field, wire, LEN)?;
                n.precompiled_charsmap = r.len_delimited()?.to_vec();
            }
            3..=5 => {
                r.expect(field, wire, VARINT)?;
                let v = r.bool()?;
                match field {
                    3 => n.add_dummy_prefix = v,
                    4 => n.remove_extra_whitespaces = v,
                    _ => n.escape_whitespaces = v,
                }
            }
            _ => r.skip(wire)?,
        }
    }
    Ok(())
}

impl SpModel {
    /// Parse and check the bytes of a `spiece.model`.
    pub fn parse(bytes: &[u8]) -> Result<SpModel> {
        let mut r = Reader::new(bytes, "ModelProto");
        let mut pieces = Vec::new();
        let mut trainer: Option<TrainerSpec> = None;
        let mut normalizer: Option<NormalizerSpec> = None;
        while !r.done() {
            let (field, wire) = r.key()?;
            match field {
                1 => {
                    r.expect(field, wire, LEN)?;
                    pieces.push(parse_piece(r.len_delimited()?)?);
                }
                2 => {
                    r.expect(field, wire, LEN)?;
                    parse_trainer_spec(r.len_delimited()?, trainer.get_or_insert_with(TrainerSpec::default))?;
                }
                3 => {
                    r.expect(field, wire, LEN)?;
                    parse_normalizer_spec(r.len_delimited()?, normalizer.get_or_insert_with(NormalizerSpec::default))?;
                }
                _ => r.skip(wire)?,
            }
        }
        // A file cut at a field boundary still parses: pieces come first, so a missing spec means a truncated file.
        let trainer_spec = trainer.ok_or_else(|| err("no trainer_spec (truncated file?)"))?;
        let normalizer_spec = normalizer.ok_or_else(|| err("no normalizer_spec (truncated file?)"))?;
        if pieces.is_empty() {
            return Err(err("no pieces"));
        }
        if let Some(i) = pieces.iter().position(|p| p.piece.is_empty()) {
            return Err(err(format!("piece {i} is empty")));
        }
        if let Some(i) = pieces.iter().position(|p| p.score.is_nan()) {
            return Err(err(format!("piece {i} has a NaN score")));
        }
        let unk = usize::try_from(trainer_spec.unk_id).ok().filter(|&u| u < pieces.len());
        if unk.is_none() {
            return Err(err(format!("unk_id {} is not a piece id (0..{})", trainer_spec.unk_id, pieces.len())));
        }
        if !normalizer_spec.precompiled_charsmap.is_empty() {
            check_precompiled_charsmap(&normalizer_spec.precompiled_charsmap)?;
        }
        Ok(SpModel { pieces, trainer_spec, normalizer_spec })
    }

    /// Id of the unknown piece (checked to be a piece id by [`SpModel::parse`]).
    pub fn unk_id(&self) -> usize {
        self.trainer_spec.unk_id as usize
    }
}

// ---------------------------------------------------------------------------------------------------------------
// precompiled_charsmap

/// Check that `tokenizers`' `Precompiled` normalizer (crate `spm_precompiled`) can use this charsmap on any input
/// without indexing out of bounds.
///
/// The format is `u32 trie_size (bytes) | trie: [u32; trie_size / 4] | normalized: UTF-8 strings, NUL-separated`.
/// `spm_precompiled` only parses the sizes when it is built; its lookup (`DoubleArray::common_prefix_search`) then
/// indexes the trie unchecked and slices `normalized` at the value it finds, so a corrupt trie panics on the first
/// text that reaches the bad unit. This walks every trie state reachable by any byte string, exactly as that lookup
/// does, and checks each index it would use (units in the trie, values on a UTF-8 char boundary of `normalized`).
pub fn check_precompiled_charsmap(charsmap: &[u8]) -> Result<()> {
    let cerr = |m: String| err(format!("precompiled_charsmap: {m}"));
    if charsmap.len() < 4 {
        return Err(cerr(format!("{} bytes, shorter than its header", charsmap.len())));
    }
    let trie_bytes = u32::from_le_bytes([charsmap[0], charsmap[1], charsmap[2], charsmap[3]]) as usize;
    let n = trie_bytes / 4;
    let body = &charsmap[4..];
    if n == 0 || n.checked_mul(4).is_none_or(|b| b > body.len()) {
        return Err(cerr(format!("trie of {trie_bytes} bytes does not fit in {} bytes", body.len())));
    }
    let units: Vec<usize> = body[..4 * n].chunks_exact(4).map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]) as usize).collect();
    let normalized = std::str::from_utf8(&body[4 * n..]).map_err(|_| cerr("replacement strings are not UTF-8".into()))?;

    // the unit accessors of spm_precompiled (Darts-clone)
    let has_leaf = |u: usize| (u >> 8) & 1 == 1;
    let value = |u: usize| u & ((1usize << 31) - 1);
    let label = |u: usize| u & ((1usize << 31) | 0xFF);
    let offset = |u: usize| (u >> 10) << ((u & (1usize << 9)) >> 6);

    // A state is the `node_pos` after `node_pos ^= offset`; the next byte c (never 0) reads unit `pos ^ c`.
    let mut seen = vec![false; n + 256];
    let mut stack = vec![offset(units[0])];
    while let Some(pos) = stack.pop() {
        if pos >= seen.len() {
            return Err(cerr(format!("trie offset {pos} out of range ({n} units)")));
        }
        if std::mem::replace(&mut seen[pos], true) {
            continue;
        }
        for c in 1..=255usize {
            let child = pos ^ c;
            let unit = *units.get(child).ok_or_else(|| cerr(format!("trie unit {child} out of range ({n} units)")))?;
            if label(unit) != c {
                continue;
            }
            let next = child ^ offset(unit);
            if has_leaf(unit) {
                let leaf = *units.get(next).ok_or_else(|| cerr(format!("trie leaf {next} out of range ({n} units)")))?;
                let v = value(leaf);
                if !normalized.is_char_boundary(v) {
                    return Err(cerr(format!("replacement offset {v} is not a char boundary of {} bytes", normalized.len())));
                }
            }
            stack.push(next);
        }
    }
    Ok(())
}
#[cfg(test)]
mod tests {
    use super::*;

    fn varint(mut v: u64, out: &mut Vec<u8>) {
        loop {
            let b = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                out.push(b);
                return;
            }
            out.push(b | 0x80);
        }
    }

    fn field_len(field: u64, data: &[u8], out: &mut Vec<u8>) {
        varint(field << 3 | 2, out);
        varint(data.len() as u64, out);
        out.extend_from_slice(data);
    }

    fn piece(s: &str, score: f32, kind: u64) -> Vec<u8> {
        let mut p = Vec::new();
        field_len(1, s.as_bytes(), &mut p);
        varint(2 << 3 | 5, &mut p);
        p.extend_from_slice(&score.to_le_bytes());
        varint(3 << 3, &mut p);
        varint(kind, &mut p);
        p
    }

    fn model(unk_id: i64) -> Vec<u8> {
        let mut m = Vec::new();
        field_len(1, &piece("<unk>", 0.0, 2), &mut m);
        field_len(1, &piece("▁a", -1.5, 1), &mut m);
        let mut t = Vec::new();
        varint(40 << 3, &mut t);
        varint(unk_id as u64, &mut t);
        varint(41 << 3, &mut t);
        varint(-1i64 as u64, &mut t); // bos_id -1: a 10-byte varint
        varint(99 << 3 | 1, &mut t); // unknown fixed64 field
        t.extend_from_slice(&[0; 8]);
        field_len(2, &t, &mut m);
        let mut n = Vec::new();
        varint(3 << 3, &mut n);
        varint(0, &mut n);
        field_len(3, &n, &mut m);
        m
    }

    #[test]
    fn parses_a_small_model() {
        let m = SpModel::parse(&model(0)).unwrap();
        assert_eq!(m.pieces.len(), 2);
        assert_eq!(m.pieces[1], Piece { piece: "▁a".into(), score: -1.5, kind: PieceType::Normal });
        assert_eq!(m.pieces[0].kind, PieceType::Unknown);
        assert_eq!(m.trainer_spec.unk_id, 0);
        assert_eq!(m.trainer_spec.bos_id, -1);
        assert_eq!(m.trainer_spec.eos_id, 2);
        assert!(!m.normalizer_spec.add_dummy_prefix);
        assert!(m.normalizer_spec.remove_extra_whitespaces);
    }

    #[test]
    fn rejects_bad_models() {
        assert!(SpModel::parse(&model(2)).is_err()); // unk_id past the pieces
        assert!(SpModel::parse(&model(-1)).is_err());
        assert!(SpModel::parse(&[]).is_err());
        let m = model(0);
        for cut in 0..m.len() {
            assert!(matches!(SpModel::parse(&m[..cut]), Err(T5Error::Tokenizer(_))), "cut at {cut}");
        }
        // wrong wire type for a known field, a group, an overlong varint
        assert!(SpModel::parse(&[1 << 3, 0]).is_err());
        assert!(SpModel::parse(&[1 << 3 | 3]).is_err());
        assert!(SpModel::parse(&[8 << 3, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f]).is_err());
    }

    #[test]
    fn charsmap_checks() {
        assert!(check_precompiled_charsmap(&[]).is_err());
        assert!(check_precompiled_charsmap(&[0, 0, 0, 0]).is_err()); // empty trie: the lookup reads unit 0
        assert!(check_precompiled_charsmap(&[8, 0, 0, 0, 1, 0, 0, 0]).is_err()); // trie past the end
        // one unit whose offset points far away
        assert!(check_precompiled_charsmap(&[4, 0, 0, 0, 0, 0, 0, 0xff]).is_err());
        // a root-only trie of 256 empty units accepts nothing and is fine
        let mut ok = vec![0u8, 4, 0, 0];
        ok.extend(std::iter::repeat_n(0u8, 1024));
        check_precompiled_charsmap(&ok).unwrap();
    }
}
