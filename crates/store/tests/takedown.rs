//! Takedown tables on both backends: notices, the exclusive outbox claim with per-recipient
//! rate limit, in-doubt marking, re-check bookkeeping, RDAP cache.
//! PostgreSQL runs when `LEAKTRACE_TEST_PG_URL` is set (see backends.rs).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use crate::common::TestDb;
use leaktrace_store::{
    NewNotice, NoticeChannel, NoticeDelivery, NoticeDisposition, NoticeLevel, OutboxClaim,
};

crate::common::both_backends!(
    notice_lifecycle,
    claim_is_exclusive_and_rate_limited,
    rdap_cache_expires
);

fn notice(id: &str, recipient: &str) -> NewNotice {
    NewNotice {
        notice_id: id.into(),
        finding_id: "F-1".into(),
        url: "https://files.example.net/a.mp4".into(),
        host: "files.example.net".into(),
        level: NoticeLevel::Host,
        recipient: recipient.into(),
        channel: NoticeChannel::Email,
        delivery: NoticeDelivery::PendingApproval,
        notice_json: "{}".into(),
        found_at: 1000,
        created_at: 1100,
    }
}

async fn notice_lifecycle(db: &TestDb) {
    let s = &db.store;
    assert!(
        s.insert_notice(&notice("N-1", "abuse@h.example"))
            .await
            .unwrap()
    );
    assert!(
        !s.insert_notice(&notice("N-1", "abuse@h.example"))
            .await
            .unwrap()
    );
    let r = s.get_notice("N-1").await.unwrap().unwrap();
    assert_eq!(
        (r.delivery.as_str(), r.disposition.as_str()),
        ("pending_approval", "open")
    );
    // Not approved: cannot be claimed.
    assert_eq!(
        s.claim_outbox("N-1", "N-1", "abuse@h.example", "w", 1200, 10, 0)
            .await
            .unwrap(),
        OutboxClaim::AlreadyClaimed
    );
    // The failed claim left no outbox row behind.
    assert!(s.approve_notice("N-1", "op", 1150).await.unwrap());
    assert!(!s.approve_notice("N-1", "op", 1150).await.unwrap());
    assert_eq!(
        s.claim_outbox("N-1", "N-1", "abuse@h.example", "w", 1200, 10, 0)
            .await
            .unwrap(),
        OutboxClaim::Claimed
    );
    assert_eq!(
        s.get_notice("N-1").await.unwrap().unwrap().delivery,
        NoticeDelivery::Sending
    );
    s.record_sent("N-1", "N-1", "<N-1@x>", "250 OK", 1200, 1300)
        .await
        .unwrap();
    let r = s.get_notice("N-1").await.unwrap().unwrap();
    assert_eq!(r.delivery, NoticeDelivery::Sent);
    assert_eq!(r.message_id.as_deref(), Some("<N-1@x>"));
    assert!(s.due_checks(1299).await.unwrap().is_empty());
    assert_eq!(s.due_checks(1300).await.unwrap().len(), 1);
    s.record_check("N-1", 200, 1300, 1400, false).await.unwrap();
    assert!(s.due_checks(1300).await.unwrap().is_empty());
    s.record_check("N-1", 404, 1400, 1500, true).await.unwrap();
    let r = s.get_notice("N-1").await.unwrap().unwrap();
    assert_eq!(
        (r.disposition.as_str(), r.closed_at),
        ("closed", Some(1400))
    );
    assert!(s.due_checks(10_000).await.unwrap().is_empty());
    // Compare and set: only from the state the caller saw.
    assert!(
        !s.set_disposition(
            "N-1",
            NoticeDisposition::Open,
            NoticeDisposition::Rejected,
            1500
        )
        .await
        .unwrap()
    );
    assert!(
        s.set_disposition(
            "N-1",
            NoticeDisposition::Closed,
            NoticeDisposition::CounterNotice,
            1500
        )
        .await
        .unwrap()
    );
    let r = s.get_notice("N-1").await.unwrap().unwrap();
    assert_eq!(
        (r.disposition.as_str(), r.closed_at),
        ("counter_notice", Some(1400))
    );
    assert_eq!(s.notices_for_finding("F-1").await.unwrap().len(), 1);
    assert_eq!(
        s.list_notices(Some(NoticeDelivery::Sent))
            .await
            .unwrap()
            .len(),
        1
    );
}

async fn claim_is_exclusive_and_rate_limited(db: &TestDb) {
    let s = &db.store;
    for id in ["N-a", "N-b", "N-c"] {
        let mut n = notice(id, "abuse@h.example");
        n.delivery = NoticeDelivery::Approved;
        s.insert_notice(&n).await.unwrap();
    }
    // Concurrent claimers of one notice: exactly one wins.
    let mut tasks = Vec::new();
    for w in 0..8 {
        let st = s.clone();
        tasks.push(tokio::spawn(async move {
            st.claim_outbox(
                "N-a",
                "N-a",
                "abuse@h.example",
                &format!("w{w}"),
                2000,
                100,
                0,
            )
            .await
            .unwrap()
        }));
    }
    let mut wins = 0;
    for t in tasks {
        if t.await.unwrap() == OutboxClaim::Claimed {
            wins += 1;
        }
    }
    assert_eq!(wins, 1);
    // Rate limit 2 per window: the third claim to the same recipient waits.
    assert_eq!(
        s.claim_outbox("N-b", "N-b", "abuse@h.example", "w", 2001, 2, 1000)
            .await
            .unwrap(),
        OutboxClaim::Claimed
    );
    assert_eq!(
        s.claim_outbox("N-c", "N-c", "abuse@h.example", "w", 2002, 2, 1000)
            .await
            .unwrap(),
        OutboxClaim::RateLimited
    );
    // Outside the window it goes.
    assert_eq!(
        s.claim_outbox("N-c", "N-c", "abuse@h.example", "w", 9000, 2, 8000)
            .await
            .unwrap(),
        OutboxClaim::Claimed
    );
    // A transient failure releases the claim: failed, sendable and claimable again.
    s.release_claim("N-c", "N-c", "503 busy", false)
        .await
        .unwrap();
    let r = s.get_notice("N-c").await.unwrap().unwrap();
    assert_eq!((r.delivery.as_str(), r.attempts), ("failed", 1));
    let ids = |v: Vec<leaktrace_store::NoticeRecord>| -> Vec<String> {
        v.into_iter().map(|r| r.notice_id).collect()
    };
    assert_eq!(ids(s.sendable_notices(3).await.unwrap()), ["N-c"]);
    assert!(s.sendable_notices(1).await.unwrap().is_empty()); // attempts cap
    assert_eq!(
        s.claim_outbox("N-c", "N-c", "abuse@h.example", "w", 9001, 2, 8000)
            .await
            .unwrap(),
        OutboxClaim::Claimed
    );
    // A permanent refusal keeps the claim: failed, not sendable, not claimable, until a
    // human approves it again.
    s.release_claim("N-c", "N-c", "403 forbidden", true)
        .await
        .unwrap();
    let r = s.get_notice("N-c").await.unwrap().unwrap();
    assert_eq!(
        (r.delivery.as_str(), r.attempts, r.last_error.as_deref()),
        ("failed", 2, Some("403 forbidden"))
    );
    assert!(s.sendable_notices(100).await.unwrap().is_empty());
    assert_eq!(
        s.claim_outbox("N-c", "N-c", "abuse@h.example", "w", 9002, 100, 0)
            .await
            .unwrap(),
        OutboxClaim::AlreadyClaimed
    );
    assert!(s.approve_notice("N-c", "op", 9003).await.unwrap());
    assert_eq!(ids(s.sendable_notices(100).await.unwrap()), ["N-c"]);
    // A closed notice is never claimed, whatever its delivery state.
    assert!(
        s.set_disposition(
            "N-c",
            NoticeDisposition::Open,
            NoticeDisposition::Closed,
            9004
        )
        .await
        .unwrap()
    );
    assert!(s.sendable_notices(100).await.unwrap().is_empty());
    assert!(!s.approve_notice("N-c", "op", 9005).await.unwrap());
    assert_eq!(
        s.claim_outbox("N-c", "N-c", "abuse@h.example", "w", 9006, 100, 0)
            .await
            .unwrap(),
        OutboxClaim::AlreadyClaimed
    );
    // Claims never recorded (a crash) become in_doubt and stay unclaimable.
    let doubt = s.mark_in_doubt(5000).await.unwrap();
    assert_eq!(doubt.len(), 2, "{doubt:?}"); // N-a (2000) and N-b (2001); N-c is recent
    assert_eq!(
        s.get_notice("N-a").await.unwrap().unwrap().delivery,
        NoticeDelivery::InDoubt
    );
    assert_eq!(
        s.claim_outbox("N-a", "N-a", "abuse@h.example", "w", 99_999, 100, 0)
            .await
            .unwrap(),
        OutboxClaim::AlreadyClaimed
    );
}

async fn rdap_cache_expires(db: &TestDb) {
    let s = &db.store;
    assert!(s.rdap_cached("ip/192.0.2.1", 10).await.unwrap().is_none());
    s.rdap_store("ip/192.0.2.1", "{\"a\":1}", 10, 20)
        .await
        .unwrap();
    assert_eq!(
        s.rdap_cached("ip/192.0.2.1", 19).await.unwrap().as_deref(),
        Some("{\"a\":1}")
    );
    assert!(s.rdap_cached("ip/192.0.2.1", 20).await.unwrap().is_none());
    s.rdap_store("ip/192.0.2.1", "{\"a\":2}", 30, 40)
        .await
        .unwrap();
    assert_eq!(
        s.rdap_cached("ip/192.0.2.1", 31).await.unwrap().as_deref(),
        Some("{\"a\":2}")
    );
}
