//! Packages made by hand, for tests of the edge that need no media tools.

use std::path::{Path, PathBuf};

/// Writes the smallest package of `title` the edge serves under `root/title`: `title.json`, an
/// HLS multivariant playlist naming one rendition (`360p/playlist.m3u8`), and that rendition's
/// empty media playlist. Returns the package directory.
///
/// # Panics
/// If a file cannot be written.
pub fn hand_made_package(root: &Path, title: &str) -> PathBuf {
    let pkg = root.join(title);
    let write = |path: PathBuf, text: &str| {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .unwrap_or_else(|e| panic!("creating {}: {e}", dir.display()));
        }
        std::fs::write(&path, text).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
    };
    write(
        pkg.join("title.json"),
        &format!("{{\"title\":\"{title}\"}}"),
    );
    write(
        pkg.join("master.m3u8"),
        "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1000\n360p/playlist.m3u8\n",
    );
    write(
        pkg.join("360p").join("playlist.m3u8"),
        "#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXT-X-ENDLIST\n",
    );
    pkg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_package_has_its_title_and_playlists() {
        let dir = tempfile::tempdir().unwrap();
        let pkg = hand_made_package(dir.path(), "film");
        assert_eq!(pkg, dir.path().join("film"));
        let title = std::fs::read_to_string(pkg.join("title.json")).unwrap();
        assert_eq!(title, "{\"title\":\"film\"}");
        assert!(pkg.join("360p/playlist.m3u8").is_file());
    }
}
