//! Audio files: what counts as one (by its first bytes, not by what the client
//! claims), the size limit, and where they are kept (a directory, each file written
//! whole and synced before the database names it).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::db::{Db, DbError, NewTrack, Stored, Track};

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
    // The rename is durable only once the directory is.
    std::fs::File::open(dir)?.sync_all()?;
    Ok(done)
}

/// Why an upload was not kept.
#[derive(Debug, thiserror::Error)]
pub enum KeepError {
    #[error("that is not an audio file (MP3, WAV, Ogg, FLAC or MP4 audio)")]
    NotAudio,
    #[error("the audio is over {MAX_AUDIO_BYTES} bytes")]
    TooLarge,
    #[error("storing the audio failed: {0}")]
    Io(String),
    #[error(transparent)]
    Db(#[from] DbError),
}

/// What an upload says about its audio.
pub struct Upload {
    pub upload_id: String,
    pub title: String,
    pub artist: String,
}

/// Keeps an upload once per upload id: checks the audio, writes its file, stores
/// the track; an upload already stored gets the stored track (and its new file is
/// removed). Shared by the API (direct mode) and the upload worker.
pub async fn keep(db: &Arc<Db>, dir: &Path, upload: Upload, audio: Arc<Vec<u8>>) -> Result<(Track, Stored), KeepError> {
    if audio.len() > MAX_AUDIO_BYTES {
        return Err(KeepError::TooLarge);
    }
    let content_type = sniff(&audio).ok_or(KeepError::NotAudio)?;
    let (dir, bytes) = (dir.to_path_buf(), audio.clone());
    let path = tokio::task::spawn_blocking(move || store(&dir, &bytes)).await.map_err(|e| KeepError::Io(e.to_string()))?.map_err(|e| KeepError::Io(e.to_string()))?;
    let new = NewTrack { upload_id: upload.upload_id, title: upload.title, artist: upload.artist, content_type: content_type.into(), size_bytes: audio.len() as i64, media_path: path.display().to_string() };
    match db.add_track(new).await {
        Ok((track, Stored::Already)) => {
            // Another attempt of the same upload won: its file stays, ours goes.
            let _ = std::fs::remove_file(&path);
            Ok((track, Stored::Already))
        }
        Ok(stored) => Ok(stored),
        Err(e) => {
            let _ = std::fs::remove_file(&path);
            Err(e.into())
        }
    }
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
