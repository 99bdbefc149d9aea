// The replay helper of the crates' `tests/fuzz_corpus.rs` (not used by the fuzz targets):
// `include!`d there, so `env!("CARGO_MANIFEST_DIR")` is the including crate's directory and
// `../../fuzz` the repository's fuzz/ directory.

/// The repository's fuzz/ directory.
fn fuzz_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz")
}

/// The files directly in `dir`, sorted; none if it does not exist.
fn files_of(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<std::path::PathBuf> = entries
        .map(|e| match e {
            Ok(e) => e.path(),
            Err(err) => panic!("{}: {err}", dir.display()),
        })
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

/// Runs `body` on every file of `fuzz/corpus/<target>/` and `fuzz/artifacts/<target>/` (the
/// crash inputs, if any); fails if the corpus is missing or empty, and names the file whose
/// input fails. Returns how many files were replayed.
fn replay(target: &str, body: fn(&[u8])) -> usize {
    let corpus = files_of(&fuzz_dir().join("corpus").join(target));
    assert!(
        !corpus.is_empty(),
        "no corpus files in fuzz/corpus/{target}"
    );
    let artifacts = files_of(&fuzz_dir().join("artifacts").join(target));
    for file in corpus.iter().chain(&artifacts) {
        let data = match std::fs::read(file) {
            Ok(d) => d,
            Err(e) => panic!("{}: {e}", file.display()),
        };
        if std::panic::catch_unwind(|| body(&data)).is_err() {
            panic!("fuzz input {} fails (see the panic above)", file.display());
        }
    }
    eprintln!(
        "{target}: replayed {} corpus and {} artifact files",
        corpus.len(),
        artifacts.len()
    );
    corpus.len() + artifacts.len()
}
