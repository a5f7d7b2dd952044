//! Byte offsets ↔ LSP positions (0-based lines, columns in UTF-16 code units, as LSP requires by default).
//!
//! Lines end at `\n`; a `\r` before it belongs to the terminator (TOML allows only `\n` and `\r\n`).

use std::ops::Range;

use tower_lsp_server::ls_types::{Position, Range as LspRange};

/// Where the lines of one text start.
pub struct LineIndex<'a> {
    text: &'a str,
    starts: Vec<usize>,
}

impl<'a> LineIndex<'a> {
    /// Indexes `text`.
    pub fn new(text: &'a str) -> LineIndex<'a> {
        let mut starts = vec![0];
        starts.extend(text.bytes().enumerate().filter(|(_, b)| *b == b'\n').map(|(i, _)| i + 1));
        LineIndex { text, starts }
    }

    /// End of line `line`'s content (before its terminator).
    fn line_end(&self, line: usize) -> usize {
        let end = self.starts.get(line + 1).map_or(self.text.len(), |next| next - 1);
        let start = self.starts[line];
        if end > start && self.text.as_bytes()[end - 1] == b'\r' { end - 1 } else { end }
    }

    /// The position of a byte offset (clamped to the text, to a character boundary and to its line's content).
    pub fn position(&self, offset: usize) -> Position {
        let mut offset = offset.min(self.text.len());
        while !self.text.is_char_boundary(offset) {
            offset -= 1;
        }
        let line = self.starts.partition_point(|s| *s <= offset) - 1;
        let start = self.starts[line];
        let offset = offset.min(self.line_end(line));
        let character = self.text[start..offset].encode_utf16().count();
        Position { line: to_u32(line), character: to_u32(character) }
    }

    /// The byte offset of a position. A line past the end gives the end of the text; a column past the end
    /// of its line gives the line's end; a column inside a surrogate pair gives the character's start.
    pub fn offset(&self, pos: Position) -> usize {
        let line = pos.line as usize;
        if line >= self.starts.len() {
            return self.text.len();
        }
        let (start, end) = (self.starts[line], self.line_end(line));
        let want = pos.character as usize;
        let mut units = 0;
        for (i, ch) in self.text[start..end].char_indices() {
            let next = units + ch.len_utf16();
            if units >= want || next > want {
                return start + i;
            }
            units = next;
        }
        end
    }

    /// The LSP range of a byte range.
    pub fn range(&self, r: Range<usize>) -> LspRange {
        LspRange { start: self.position(r.start), end: self.position(r.end.max(r.start)) }
    }

    /// The byte range of an LSP range (an inverted range is made empty at its start).
    pub fn byte_range(&self, r: LspRange) -> Range<usize> {
        let start = self.offset(r.start);
        start..self.offset(r.end).max(start)
    }

    /// `r`, or for an empty range the character after it on the same line (so that it can be seen); still
    /// empty at the end of a line.
    pub fn visible(&self, r: Range<usize>) -> Range<usize> {
        if r.end > r.start {
            return r;
        }
        let line = self.starts.partition_point(|s| *s <= r.start).saturating_sub(1);
        let end = self.line_end(line);
        match self.text.get(r.start..end).and_then(|rest| rest.chars().next()) {
            Some(ch) => r.start..r.start + ch.len_utf8(),
            None => r,
        }
    }
}

fn to_u32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pos(line: u32, character: u32) -> Position {
        Position { line, character }
    }

    #[test]
    fn columns_count_utf16_units() {
        // `é` is 2 bytes and 1 unit; `😀` is 4 bytes and 2 units.
        let text = "a = \"é😀x\"\nb = 1\n";
        let idx = LineIndex::new(text);
        let x = text.find('x').unwrap();
        assert_eq!(x, 11);
        assert_eq!(idx.position(x), pos(0, 8));
        assert_eq!(idx.offset(pos(0, 8)), x);
        assert_eq!(idx.position(text.find('b').unwrap()), pos(1, 0));
        // Inside the surrogate pair: the emoji's start.
        assert_eq!(idx.offset(pos(0, 7)), text.find('😀').unwrap());
        // Offsets inside a character are moved to its start.
        assert_eq!(idx.position(7), pos(0, 6));
    }

    #[test]
    fn round_trips_every_character_boundary() {
        let text = "[modules.é]\r\nrun = \"𝄞 ü\"\n\nx";
        let idx = LineIndex::new(text);
        for (offset, ch) in text.char_indices() {
            if ch == '\n' || ch == '\r' {
                continue;
            }
            assert_eq!(idx.offset(idx.position(offset)), offset, "offset {offset}");
        }
    }

    #[test]
    fn clamps_past_line_and_text_ends_and_excludes_crlf() {
        let text = "ab\r\ncd";
        let idx = LineIndex::new(text);
        assert_eq!(idx.offset(pos(0, 99)), 2);
        assert_eq!(idx.position(3), pos(0, 2));
        assert_eq!(idx.offset(pos(1, 1)), 5);
        assert_eq!(idx.offset(pos(7, 0)), text.len());
        assert_eq!(idx.position(100), pos(1, 2));
        assert_eq!(idx.range(4..6), LspRange { start: pos(1, 0), end: pos(1, 2) });
        assert_eq!(idx.byte_range(LspRange { start: pos(1, 1), end: pos(0, 0) }), 5..5);
    }

    #[test]
    fn empty_ranges_are_widened_to_one_character_on_their_line() {
        let text = "a = \"é\nb";
        let idx = LineIndex::new(text);
        assert_eq!(idx.visible(5..5), 5..7);
        assert_eq!(idx.visible(7..7), 7..7);
        assert_eq!(idx.visible(1..3), 1..3);
        assert_eq!(idx.visible(9..9), 9..9);
    }
}
