//! Notice model, validator, positive-match gate and renderers (golden files; ACNS checked by
//! xmllint against the published 1.2 XSD; Cloudflare and Lumen field by field from their
//! published request formats).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use crate::common::*;

use leaktrace_takedown::{Element, Notice, TakedownError, gate, render};
use serde_json::Value;
use std::process::Command;

const NOW: i64 = 1_795_274_000;

fn notice() -> Notice {
    Notice::build(&finding(), &complainant(), &work(), recipient(), 1e-6, NOW).unwrap()
}

#[test]
fn gate_requires_a_positive_match() {
    let mut f = finding();
    assert!(gate(&f, 1e-6).is_ok());
    // Accusation weaker than the configured probability: refused.
    f.accused[0].probability = 3e-4;
    let e = gate(&f, 1e-6).unwrap_err();
    assert!(matches!(e, TakedownError::NoPositiveMatch { .. }), "{e}");
    assert!(
        Notice::build(&f, &complainant(), &work(), recipient(), 1e-6, NOW).is_err(),
        "a notice was built without a positive match"
    );
    // "no accusation" verdict with an (inconsistent) list: still refused.
    f.accused[0].probability = 1e-9;
    f.verdict = Some("no accusation".into());
    assert!(gate(&f, 1e-6).is_err());
    // Exact catalogue hash match: allowed without a detector result.
    f.verdict = None;
    f.accused.clear();
    f.catalogue_hash_match = Some("bbb-720p-master".into());
    assert!(matches!(
        gate(&f, 1e-6).unwrap(),
        leaktrace_takedown::PositiveMatch::CatalogueHash { .. }
    ));
    // Out-of-range configuration is an error naming the range.
    let e = gate(&finding(), 0.0).unwrap_err().to_string();
    assert!(e.contains("(0, 1]"), "{e}");
}

#[test]
fn catalogue_match_is_computed_from_the_work_asset_hashes() {
    let f = finding();
    let mut w = work();
    assert_eq!(w.catalogue_match(&f.sha256), None);
    w.asset_sha256 = vec![
        "00".repeat(32),
        format!(" {} ", f.sha256.to_ascii_uppercase()),
    ];
    let m = w.catalogue_match(&f.sha256).unwrap();
    assert_eq!(m, format!("sha256:{}", f.sha256));
    assert_eq!(w.catalogue_match(""), None);
    assert_eq!(w.catalogue_match(&f.sha256[..63]), None);
    // That match alone passes the gate; the hashes never reach a notice.
    let mut g = f.clone();
    g.verdict = None;
    g.accused.clear();
    g.catalogue_hash_match = Some(m);
    assert!(gate(&g, 1e-6).is_ok());
    let n = Notice::build(&g, &complainant(), &w, recipient(), 1e-6, NOW).unwrap();
    assert!(n.work.asset_sha256.is_empty());
    assert!(!serde_json::to_string(&n).unwrap().contains("asset_sha256"));
}

#[test]
fn incomplete_notice_is_refused_naming_the_element() {
    let n = notice();
    n.validate().unwrap();
    type Breaker = Box<dyn Fn(&mut Notice)>;
    let cases: Vec<(Breaker, Element, &str)> = vec![
        (
            Box::new(|n| n.signature = "//".into()),
            Element::DmcaSignature,
            "(i)",
        ),
        (
            Box::new(|n| n.work.title = " ".into()),
            Element::DmcaWork,
            "(ii)",
        ),
        (
            Box::new(|n| n.infringing_urls = vec!["ftp://x.example/a".into()]),
            Element::DmcaMaterial,
            "(iii)",
        ),
        (
            Box::new(|n| n.infringing_urls.clear()),
            Element::DmcaMaterial,
            "(iii)",
        ),
        (
            Box::new(|n| {
                n.complainant.address.clear();
                n.complainant.phone.clear();
                n.complainant.email = "nobody".into();
            }),
            Element::DmcaContact,
            "(iv)",
        ),
        (
            Box::new(|n| n.good_faith = "We think so.".into()),
            Element::DmcaGoodFaith,
            "(v)",
        ),
        (
            Box::new(|n| n.accuracy = "The information is accurate and I am authorized.".into()),
            Element::DmcaAccuracy,
            "(vi)",
        ),
        (
            Box::new(|n| n.explanation.clear()),
            Element::DsaExplanation,
            "16(2)(a)",
        ),
        (
            Box::new(|n| n.complainant.email = "not-an-address".into()),
            Element::DsaNotifier,
            "16(2)(c)",
        ),
        (
            Box::new(|n| {
                n.accuracy =
                    "The information is accurate, and under penalty of perjury I am authorized."
                        .into()
            }),
            Element::DsaBonaFide,
            "16(2)(d)",
        ),
        (
            Box::new(|n| n.recipient.email = String::new()),
            Element::Recipient,
            "recipient",
        ),
    ];
    for (break_it, element, label) in cases {
        let mut bad = n.clone();
        break_it(&mut bad);
        let err = bad.validate().unwrap_err();
        match &err {
            TakedownError::Incomplete { element: got } => assert_eq!(*got, element),
            other => panic!("expected Incomplete, got {other}"),
        }
        let msg = err.to_string();
        assert!(msg.contains(label), "{msg:?} does not name {label}");
    }
    // Building from an empty complainant is refused too.
    let mut c = complainant();
    c.name.clear();
    let e = Notice::build(&finding(), &c, &work(), recipient(), 1e-6, NOW).unwrap_err();
    assert!(e.to_string().contains("512(c)(3)(A)(i)"), "{e}");
}

#[test]
fn notice_id_is_stable_and_distinct_per_recipient() {
    let a = notice();
    let b = notice();
    assert_eq!(a.notice_id, b.notice_id);
    assert_eq!(a.message_id(), b.message_id());
    let mut r = recipient();
    r.email = "abuse@other.example".into();
    let c = Notice::build(&finding(), &complainant(), &work(), r, 1e-6, NOW).unwrap();
    assert_ne!(a.notice_id, c.notice_id);
}

#[test]
fn dmca_letter_golden() {
    let text = render::dmca_letter(&notice());
    golden("dmca.txt", &text);
    // The six elements are visibly present.
    for needle in [
        "Signature: /Jane Roe/",
        "Title: Big Buck Bunny",
        "https://files.example.net/d/abc123/bbb.2026.720p.mp4",
        "E-mail: antipiracy@studio.example",
        "good faith belief",
        "under penalty of perjury",
    ] {
        assert!(text.contains(needle), "letter lacks {needle:?}");
    }
    assert!(
        !text.contains("s-0017"),
        "the accused session id must not be in a notice"
    );
}

/// Validates `xml` with xmllint against the ACNS 1.2 XSD (offline: the schema's imports are
/// local files beside it, and `--nonet` forbids fetching anything).
pub fn xmllint_acns(xml: &str) -> std::process::Output {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("notice.xml");
    std::fs::write(&f, xml).unwrap();
    Command::new("xmllint")
        .args(["--noout", "--nonet", "--schema"])
        .arg(acns_xsd())
        .arg(&f)
        .output()
        .expect("xmllint (Debian libxml2-utils) must be installed")
}

#[test]
fn acns_xml_golden_and_schema_valid() {
    let n = notice();
    let xml = render::acns_xml(&n);
    golden("acns.xml", &xml);
    let out = xmllint_acns(&xml);
    assert!(
        out.status.success(),
        "xmllint rejected the ACNS XML:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(xml.contains("xmlns=\"http://www.acns.net/ACNS\""));
    assert!(xml.contains("<WatermarkMatched type="));
    assert!(xml.contains("p=2.500e-9"));

    // Catalogue hash match: HashMatched instead of WatermarkMatched; still valid.
    let mut f = finding();
    f.verdict = None;
    f.accused.clear();
    f.catalogue_hash_match = Some("bbb-720p-master".into());
    let n2 = Notice::build(&f, &complainant(), &work(), recipient(), 1e-6, NOW).unwrap();
    let xml2 = render::acns_xml(&n2);
    assert!(xml2.contains("<HashMatched>true</HashMatched>"));
    assert!(xmllint_acns(&xml2).status.success());

    // Markup in input is escaped, and the result is still schema-valid.
    let mut w = work();
    w.title = "Bunny & <Friends> \"2\"".into();
    let n3 = Notice::build(&finding(), &complainant(), &w, recipient(), 1e-6, NOW).unwrap();
    let xml3 = render::acns_xml(&n3);
    assert!(xml3.contains("Bunny &amp; &lt;Friends&gt;"));
    let out = xmllint_acns(&xml3);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // The check can fail: an XML missing the required Source/IP_Address is rejected.
    let broken = xml.replace("<IP_Address>192.0.2.10</IP_Address>", "");
    assert!(
        !xmllint_acns(&broken).status.success(),
        "xmllint accepted an invalid notice"
    );
}

#[test]
fn cloudflare_json_fields() {
    let n = notice();
    let v = render::cloudflare_json(&n);
    golden(
        "cloudflare.json",
        &(serde_json::to_string_pretty(&v).unwrap() + "\n"),
    );
    // Published format (abuse-reports create, act = abuse_dmca): required fields,
    // email2 equals email, agree = 1, signature = name, length limits, one host in urls.
    let s = |k: &str| {
        v[k].as_str()
            .unwrap_or_else(|| panic!("{k} missing or not a string"))
    };
    assert_eq!(s("act"), "abuse_dmca");
    assert_eq!(s("email"), s("email2"));
    assert_eq!(s("name"), "Jane Roe");
    assert_eq!(s("signature"), s("name"));
    assert_eq!(v["agree"], 1);
    let urls: Vec<&str> = s("urls").split('\n').collect();
    assert!(!urls.is_empty() && urls.len() <= 250);
    let hosts: std::collections::BTreeSet<String> = urls
        .iter()
        .map(|u| url::Url::parse(u).unwrap().host_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        hosts.len(),
        1,
        "all URLs of one report must share a hostname"
    );
    for (k, max) in [
        ("original_work", 255),
        ("justification", 5000),
        ("comments", 2000),
        ("address1", 100),
        ("agent_name", 60),
        ("tele", 20),
    ] {
        assert!(s(k).chars().count() <= max, "{k} longer than {max}");
    }
    for k in ["host_notification", "owner_notification"] {
        assert!(["send", "send-anon", "none"].contains(&s(k)));
        assert_ne!(s(k), "send-anon", "DMCA reports cannot be anonymous");
    }
    // Overlong input is cut to the limits.
    let mut long = n.clone();
    long.explanation = "x".repeat(6000);
    long.complainant.organization = "y".repeat(100);
    let v = render::cloudflare_json(&long);
    assert_eq!(v["justification"].as_str().unwrap().len(), 5000);
    assert_eq!(v["agent_name"].as_str().unwrap().len(), 60);
}

#[test]
fn lumen_json_fields() {
    let v = render::lumen_json(&notice());
    golden(
        "lumen.json",
        &(serde_json::to_string_pretty(&v).unwrap() + "\n"),
    );
    let n = &v["notice"];
    // Lumen API: title and type required; type from the published list.
    assert!(!n["title"].as_str().unwrap().is_empty());
    let types = [
        "CourtOrder",
        "DataProtection",
        "Defamation",
        "DMCA",
        "LawEnforcementRequest",
        "Other",
        "PrivateInformation",
        "GovernmentRequest",
        "Trademark",
    ];
    assert!(types.contains(&n["type"].as_str().unwrap()));
    let works = n["works_attributes"].as_array().unwrap();
    assert_eq!(works.len(), 1);
    let inf = works[0]["infringing_urls_attributes"].as_array().unwrap();
    assert_eq!(
        inf[0]["url"],
        "https://files.example.net/d/abc123/bbb.2026.720p.mp4"
    );
    assert_eq!(
        works[0]["copyrighted_urls_attributes"][0]["url"],
        "https://studio.example/films/bbb"
    );
    let roles: Vec<&str> = n["entity_notice_roles_attributes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    for r in &roles {
        assert!(
            ["sender", "principal", "recipient", "submitter"].contains(r),
            "{r}"
        );
    }
    assert!(roles.contains(&"sender") && roles.contains(&"recipient"));
    for r in n["entity_notice_roles_attributes"].as_array().unwrap() {
        let e = &r["entity_attributes"];
        assert!(!e["name"].as_str().unwrap().is_empty());
        if let Some(k) = e.get("kind").and_then(Value::as_str) {
            assert!(["individual", "organization"].contains(&k));
        }
    }
    // Lumen republishes notices: no personal contact data beyond the sender's address.
    let text = v.to_string();
    assert!(!text.contains("+1 555 0100") && !text.contains("s-0017"));
}
