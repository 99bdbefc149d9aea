//! The XML schemas vendored under `tests/schemas` (see `tests/schemas/README.md`).

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::repo;

/// The ACNS 1.2 schema, `tests/schemas/acns/acns-1.2.xsd`, with its imports beside it (so
/// that validation needs no network).
pub fn acns_xsd() -> PathBuf {
    repo().join("tests/schemas/acns/acns-1.2.xsd")
}

/// Validates `xml` against the ACNS 1.2 XSD with xmllint (`--nonet`: nothing is fetched).
///
/// # Panics
/// Unless xmllint (Debian `libxml2-utils`) runs and finds `xml` valid.
pub fn assert_acns_valid(xml: &Path) {
    let out = Command::new("xmllint")
        .args(["--noout", "--nonet", "--schema"])
        .arg(acns_xsd())
        .arg(xml)
        .output()
        .unwrap_or_else(|e| panic!("cannot run xmllint (Debian libxml2-utils): {e}"));
    assert!(
        out.status.success(),
        "{} is not valid ACNS 1.2: {}",
        xml.display(),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_takedown_golden_notice_is_valid_acns() {
        assert!(acns_xsd().is_file());
        assert_acns_valid(&repo().join("crates/takedown/tests/golden/acns.xml"));
    }

    #[test]
    #[should_panic(expected = "is not valid ACNS 1.2")]
    fn another_document_is_not() {
        let d = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let xml = d.path().join("x.xml");
        std::fs::write(&xml, "<Infringement/>").unwrap_or_else(|e| panic!("{e}"));
        assert_acns_valid(&xml);
    }
}
