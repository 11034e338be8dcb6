//! Audio files: what counts as one (by its first bytes, not by what the client
//! claims), the size limit, and where they are kept (a directory, each file written
//! whole and synced before the database names it).

use std::path::{Path, PathBuf};

/// The largest upload: tens of MB, as a long track at a high bit rate.
pub const MAX_AUDIO_BYTES: usize = 64 << 20;

/// The audio format `bytes` start with, as a content type.
pub fn sniff(bytes: &[u8]) -> Option<&'static str> {
    let at = |i: usize, magic: &[u8]| bytes.get(i..i + magic.len()) == Some(magic);
    if at(0, b"ID3") || (bytes.len() > 1 && bytes[0] == 0xFF && bytes[1] & 0xE0 == 0xE0) {
        Some("audio/mpeg")
    } else if at(0, b"RIFF") && at(8, b"WAVE") {
        Some("audio/wav")
    } else if at(0, b"OggS") {
        Some("audio/ogg")
    } else if at(0, b"fLaC") {
        Some("audio/flac")
    } else if at(4, b"ftyp") {
        Some("audio/mp4")
    } else {
        None
    }
}

/// Writes `bytes` to a new file under `dir` (synced, then renamed into place) and
/// returns its path.
pub fn store(dir: &Path, bytes: &[u8]) -> std::io::Result<PathBuf> {
    use std::io::Write;
    std::fs::create_dir_all(dir)?;
    let name = uuid::Uuid::new_v4().to_string();
    let partial = dir.join(format!("{name}.partial"));
    let done = dir.join(&name);
    let mut f = std::fs::File::create(&partial)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&partial, &done)?;
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audio_is_known_by_its_first_bytes() {
        assert_eq!(sniff(b"ID3\x04rest"), Some("audio/mpeg"));
        assert_eq!(sniff(&[0xFF, 0xFB, 0x90, 0x00]), Some("audio/mpeg"));
        assert_eq!(sniff(b"RIFF\0\0\0\0WAVEfmt "), Some("audio/wav"));
        assert_eq!(sniff(b"OggS\0"), Some("audio/ogg"));
        assert_eq!(sniff(b"fLaC"), Some("audio/flac"));
        assert_eq!(sniff(b"\0\0\0\x20ftypM4A "), Some("audio/mp4"));
        assert_eq!(sniff(b"%PDF-1.7"), None);
        assert_eq!(sniff(b""), None);
    }
}
