//! Renderers: the DMCA letter (plain text), ACNS 1.2 XML, Cloudflare abuse JSON, Lumen JSON.
//!
//! Each takes a validated [`Notice`] and is deterministic (no clock, no randomness), so the
//! outputs are golden-file tested.

use quick_xml::Writer;
use quick_xml::events::{BytesDecl, BytesText, Event};
use serde_json::{Value, json};

use crate::notice::{Notice, PositiveMatch};

/// ACNS 1.2 namespace.
pub const ACNS_NS: &str = "http://www.acns.net/ACNS";
/// Where the ACNS 1.2 schema is published.
pub const ACNS_SCHEMA_LOCATION: &str =
    "http://www.acns.net/ACNS http://www.acns.net/v1.2/ACNS2v1_2.xsd";

/// UTC unix seconds as RFC 3339 (`2026-11-21T15:38:01Z`).
pub fn rfc3339(unix: i64) -> String {
    chrono::DateTime::from_timestamp(unix, 0).map_or_else(
        || format!("@{unix}"),
        |t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    )
}

/// The plain-text DMCA § 512(c)(3) letter (also covers DSA Art. 16(2)).
pub fn dmca_letter(n: &Notice) -> String {
    let c = &n.complainant;
    let mut s = String::new();
    let mut line = |t: &str| {
        s.push_str(t);
        s.push('\n');
    };
    line(&format!(
        "Subject: Notice of copyright infringement ({}) - {}",
        n.notice_id, n.work.title
    ));
    line("");
    line(&format!("To: {} <{}>", n.recipient.name, n.recipient.email));
    line(&format!("Date: {}", rfc3339(n.created_at)));
    line(&format!("Notice ID: {}", n.notice_id));
    line("");
    line(
        "This is a notification of claimed copyright infringement under 17 U.S.C. 512(c)(3) and a notice under Article 16 of Regulation (EU) 2022/2065 (Digital Services Act).",
    );
    line("");
    line("1. Copyrighted work");
    line(&format!("   Title: {}", n.work.title));
    if !n.work.description.is_empty() {
        line(&format!("   Description: {}", n.work.description));
    }
    if let Some(u) = &n.work.authorized_url {
        line(&format!("   Authorized source: {u}"));
    }
    let owner = c.principal.as_deref().unwrap_or(&c.organization);
    if !owner.is_empty() {
        line(&format!("   Copyright owner: {owner}"));
    }
    line("");
    line("2. Infringing material (please remove or disable access to):");
    for u in &n.infringing_urls {
        line(&format!("   {u}"));
    }
    line(&format!("   File name: {}", n.file_name));
    line("");
    line("3. Why it is infringing");
    line(&format!("   {}", n.explanation));
    line("");
    line("4. Evidence");
    line(&format!("   Server address: {}", n.ip));
    line(&format!("   First seen: {}", rfc3339(n.found_at)));
    line(&format!("   Captured: {}", rfc3339(n.captured_at)));
    line(&format!("   Size: {} bytes", n.byte_len));
    line(&format!("   SHA-256: {}", n.sha256));
    line(&format!("   BLAKE3: {}", n.blake3));
    line(&format!("   Match: {}", n.evidence_match.describe()));
    line("");
    line("5. Statements");
    line(&format!("   {}", n.good_faith));
    line(&format!("   {}", n.accuracy));
    line("");
    line("6. Complaining party");
    line(&format!("   Name: {}", c.name));
    if !c.organization.is_empty() {
        line(&format!("   On behalf of: {}", c.organization));
    }
    if !c.address.is_empty() {
        line(&format!("   Address: {}", c.address));
    }
    if !c.phone.is_empty() {
        line(&format!("   Telephone: {}", c.phone));
    }
    line(&format!("   E-mail: {}", c.email));
    line("");
    line(&format!("Signature: {}", n.signature));
    s
}

/// A `Result` whose error is a write into memory (cannot happen in practice).
type Io = std::io::Result<()>;

fn text(w: &mut Writer<Vec<u8>>, name: &str, value: &str) -> Io {
    w.create_element(name)
        .write_text_content(BytesText::new(value))?;
    Ok(())
}

/// ACNS 1.2 `Infringement` XML (namespace [`ACNS_NS`]), elements in XSD order;
/// `Detection/WatermarkMatched` carries the detector's result.
pub fn acns_xml(n: &Notice) -> String {
    // Writing into a Vec<u8> cannot fail; an error would only be a bug in quick-xml.
    write_acns(n).unwrap_or_default()
}

fn write_acns(n: &Notice) -> Result<String, std::io::Error> {
    let mut w = Writer::new_with_indent(Vec::new(), b' ', 2);
    w.write_event(Event::Decl(BytesDecl::new("1.0", Some("UTF-8"), None)))?;
    let c = &n.complainant;
    let captured = rfc3339(n.captured_at);
    w.create_element("Infringement")
        .with_attribute(("xmlns", ACNS_NS))
        .with_attribute(("xmlns:xsi", "http://www.w3.org/2001/XMLSchema-instance"))
        .with_attribute(("xsi:schemaLocation", ACNS_SCHEMA_LOCATION))
        .write_inner_content(|w| {
            w.create_element("Case").write_inner_content(|w| {
                text(w, "ID", &n.notice_id)?;
                text(w, "Status", "Open")?;
                text(w, "Severity", "High")
            })?;
            w.create_element("Complainant").write_inner_content(|w| {
                let entity = if c.organization.is_empty() {
                    &c.name
                } else {
                    &c.organization
                };
                text(w, "Entity", entity)?;
                text(w, "Contact", &c.name)?;
                if !c.address.is_empty() {
                    text(w, "Address", &c.address)?;
                }
                if !c.phone.is_empty() {
                    text(w, "Phone", &c.phone)?;
                }
                text(w, "Email", &c.email)
            })?;
            w.create_element("Service_Provider")
                .write_inner_content(|w| {
                    text(w, "Entity", &n.recipient.name)?;
                    text(w, "Email", &n.recipient.email)
                })?;
            let first = n.infringing_urls.first().and_then(|u| url::Url::parse(u).ok());
            w.create_element("Source").write_inner_content(|w| {
                text(w, "TimeStamp", &captured)?;
                text(w, "IP_Address", &n.ip.to_string())?;
                if let Some(port) = first.as_ref().and_then(url::Url::port_or_known_default) {
                    text(w, "Port", &port.to_string())?;
                }
                if let Some(host) = first.as_ref().and_then(|u| u.host_str()) {
                    text(w, "DNS_Name", host)?;
                }
                text(w, "Type", "HTTP")?;
                if let Some(u) = &first {
                    text(w, "URL_Base", &format!("{}://{}/", u.scheme(), u.authority()))?;
                }
                Ok(())
            })?;
            w.create_element("Content").write_inner_content(|w| {
                for url in &n.infringing_urls {
                    w.create_element("Item").write_inner_content(|w| {
                        text(w, "TimeStamp", &captured)?;
                        text(w, "Title", &n.work.title)?;
                        text(w, "FileName", &n.file_name)?;
                        text(w, "FileSize", &n.byte_len.to_string())?;
                        text(w, "URL", url)?;
                        text(w, "ExplicitType", "Movie")?;
                        w.create_element("Hash")
                            .with_attribute(("Type", "SHA256"))
                            .write_text_content(BytesText::new(&n.sha256))?;
                        Ok(())
                    })?;
                }
                Ok(())
            })?;
            text(w, "Notes", &n.explanation)?;
            text(w, "Type", "DMCA")?;
            w.create_element("Detection").write_inner_content(|w| {
                w.create_element("Asset").write_inner_content(|w| {
                    text(w, "OriginalAssetName", &n.work.title)
                })?;
                match &n.evidence_match {
                    PositiveMatch::Watermark {
                        probability,
                        fp_max,
                        positions_used,
                    } => {
                        let used = positions_used.map_or(String::new(), |u| format!(";positions={u}"));
                        w.create_element("WatermarkMatched")
                            .with_attribute(("type", "leaktrace A/B forensic watermark (ETSI TS 104 002)"))
                            .with_attribute((
                                "payload",
                                format!("leaktrace.detect.v1;verdict=accused;p={probability:.3e};fp_max={fp_max:.0e}{used}")
                                    .as_str(),
                            ))
                            .write_empty()?;
                    }
                    PositiveMatch::CatalogueHash { .. } => {
                        text(w, "HashMatched", "true")?;
                    }
                }
                text(w, "VerificationID", &n.finding_id)
            })?;
            w.create_element("Declarations").write_inner_content(|w| {
                text(w, "Type", "Good faith")?;
                text(w, "Body", &n.good_faith)
            })?;
            w.create_element("Declarations").write_inner_content(|w| {
                text(w, "Type", "Accuracy and authority")?;
                text(w, "Body", &n.accuracy)
            })?;
            Ok(())
        })?;
    let mut out = String::from_utf8_lossy(&w.into_inner()).into_owned();
    out.push('\n');
    Ok(out)
}

fn truncate(s: &str, max_chars: usize) -> String {
    s.chars().take(max_chars).collect()
}

/// Cloudflare abuse report (`act = "abuse_dmca"`) request body, with the API's length limits
/// applied (original_work ≤ 255, justification ≤ 5000, comments ≤ 2000, address1 ≤ 100,
/// agent_name ≤ 60, tele ≤ 20 characters). `urls` is newline-separated and all on one host.
pub fn cloudflare_json(n: &Notice) -> Value {
    let c = &n.complainant;
    let original = match &n.work.authorized_url {
        Some(u) => format!("{} ({u})", n.work.title),
        None => n.work.title.clone(),
    };
    let mut v = json!({
        "act": "abuse_dmca",
        "email": c.email,
        "email2": c.email,
        "name": c.name,
        "urls": n.infringing_urls.join("\n"),
        "agree": 1,
        "signature": c.name,
        "original_work": truncate(&original, 255),
        "justification": truncate(&n.explanation, 5000),
        "comments": truncate(&format!("Notice {}; SHA-256 {}; captured {} from {}", n.notice_id, n.sha256, rfc3339(n.captured_at), n.ip), 2000),
        "destination_ips": n.ip.to_string(),
        "host_notification": "send",
        "owner_notification": "send",
    });
    if let Value::Object(m) = &mut v {
        if !c.address.is_empty() {
            m.insert("address1".into(), Value::from(truncate(&c.address, 100)));
        }
        if !c.organization.is_empty() {
            m.insert(
                "agent_name".into(),
                Value::from(truncate(&c.organization, 60)),
            );
        }
        if !c.phone.is_empty() {
            m.insert("tele".into(), Value::from(truncate(&c.phone, 20)));
        }
    }
    v
}

/// Lumen database notice (`POST /notices` body without the token): type DMCA, one work with
/// its infringing and copyrighted URLs, sender / principal / recipient entities.
pub fn lumen_json(n: &Notice) -> Value {
    let c = &n.complainant;
    let sender = json!({
        "name": "sender",
        "entity_attributes": { "name": if c.organization.is_empty() { &c.name } else { &c.organization }, "kind": "organization", "email": c.email }
    });
    let mut roles = vec![sender];
    if let Some(p) = &c.principal {
        roles.push(json!({ "name": "principal", "entity_attributes": { "name": p, "kind": "organization" } }));
    }
    roles.push(json!({
        "name": "recipient",
        "entity_attributes": { "name": n.recipient.name, "kind": "organization" }
    }));
    let copyrighted: Vec<Value> = n
        .work
        .authorized_url
        .iter()
        .map(|u| json!({ "url": u }))
        .collect();
    json!({
        "notice": {
            "title": format!("DMCA notice to {}: {}", n.recipient.name, n.work.title),
            "type": "DMCA",
            "subject": format!("Unauthorized copy of {}", n.work.title),
            "body": format!("{}\n\n{}\n{}", n.explanation, n.good_faith, n.accuracy),
            "date_sent": rfc3339(n.created_at),
            "language": "en",
            "works_attributes": [{
                "description": n.work.title,
                "kind": "movie",
                "infringing_urls_attributes": n.infringing_urls.iter().map(|u| json!({ "url": u })).collect::<Vec<_>>(),
                "copyrighted_urls_attributes": copyrighted,
            }],
            "entity_notice_roles_attributes": roles,
        }
    })
}
