//! Session revocation on both backends: revoke and restore by session and by account, the
//! refusals that change nothing, the append-only audit trail, and the incremental read an
//! edge follows. PostgreSQL runs when `LEAKTRACE_TEST_PG_URL` is set (see backends.rs).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use crate::common::{TestDb, session, title};
use leaktrace_store::{NewSession, RevocationAction, RevocationTarget, StoreError};

crate::common::both_backends!(
    revoke_and_restore_one_session,
    revoke_every_session_of_an_account,
    refusals_change_nothing,
    the_audit_trail_cannot_be_rewritten,
    a_follower_reads_events_in_order
);

async fn setup(db: &TestDb) {
    db.store.upsert_title(&title("t")).await.unwrap();
    let mut sessions: Vec<NewSession> = ["s1", "s2", "s3"]
        .iter()
        .map(|id| session(id, "t"))
        .collect();
    sessions[0].account_ref = "acct-a".into();
    sessions[1].account_ref = "acct-a".into();
    sessions[2].account_ref = "acct-b".into();
    db.store.insert_sessions(&sessions).await.unwrap();
}

async fn revoke_and_restore_one_session(db: &TestDb) {
    setup(db).await;
    let s = &db.store;
    assert!(!s.is_revoked("s1").await.unwrap());
    let ev = s
        .revoke(
            RevocationTarget::Session("s1"),
            "alice",
            "restream on pirate.example",
        )
        .await
        .unwrap();
    assert_eq!(ev.len(), 1);
    assert_eq!(
        (
            ev[0].session_id.as_str(),
            ev[0].action,
            ev[0].actor.as_str()
        ),
        ("s1", RevocationAction::Revoke, "alice")
    );
    assert!(s.is_revoked("s1").await.unwrap());
    assert!(!s.is_revoked("s2").await.unwrap());
    let list = s.revoked_sessions(None, 100).await.unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(
        (list[0].session_id.as_str(), list[0].seq),
        ("s1", ev[0].seq)
    );

    let back = s
        .restore(RevocationTarget::Session("s1"), "bob", "false alarm")
        .await
        .unwrap();
    assert_eq!(back[0].action, RevocationAction::Restore);
    assert!(back[0].seq > ev[0].seq);
    assert!(!s.is_revoked("s1").await.unwrap());
    assert!(s.revoked_sessions(None, 100).await.unwrap().is_empty());
    // Revoked again after a restore: a third event, the trail keeps all three.
    s.revoke(RevocationTarget::Session("s1"), "alice", "again")
        .await
        .unwrap();
    let history = s.revocation_history("s1").await.unwrap();
    let actions: Vec<_> = history
        .iter()
        .map(|e| (e.action, e.actor.as_str()))
        .collect();
    assert_eq!(
        actions,
        [
            (RevocationAction::Revoke, "alice"),
            (RevocationAction::Restore, "bob"),
            (RevocationAction::Revoke, "alice")
        ]
    );
    assert_eq!(history[1].reason, "false alarm");
}

async fn revoke_every_session_of_an_account(db: &TestDb) {
    setup(db).await;
    let s = &db.store;
    s.revoke(RevocationTarget::Session("s2"), "alice", "first")
        .await
        .unwrap();
    // The account's other session only: s2 is revoked already.
    let ev = s
        .revoke(
            RevocationTarget::Account("acct-a"),
            "alice",
            "account shared its stream",
        )
        .await
        .unwrap();
    let ids: Vec<&str> = ev.iter().map(|e| e.session_id.as_str()).collect();
    assert_eq!(ids, ["s1"]);
    assert!(s.is_revoked("s1").await.unwrap() && s.is_revoked("s2").await.unwrap());
    assert!(!s.is_revoked("s3").await.unwrap());
    let back = s
        .restore(RevocationTarget::Account("acct-a"), "bob", "cleared")
        .await
        .unwrap();
    assert_eq!(back.len(), 2);
    assert!(s.revoked_sessions(None, 100).await.unwrap().is_empty());
}

async fn refusals_change_nothing(db: &TestDb) {
    setup(db).await;
    let s = &db.store;
    let before = s.last_revocation_seq().await.unwrap();
    let e = s
        .revoke(RevocationTarget::Session("nobody"), "alice", "x")
        .await
        .unwrap_err();
    assert!(
        matches!(
            e,
            StoreError::NotFound {
                what: "session",
                ..
            }
        ),
        "{e}"
    );
    let e = s
        .revoke(RevocationTarget::Account("acct-zzz"), "alice", "x")
        .await
        .unwrap_err();
    assert!(
        matches!(
            e,
            StoreError::NotFound {
                what: "account",
                ..
            }
        ),
        "{e}"
    );
    let e = s
        .restore(RevocationTarget::Session("s1"), "alice", "x")
        .await
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "session `s1` is not revoked; nothing changed"
    );
    s.revoke(RevocationTarget::Session("s1"), "alice", "x")
        .await
        .unwrap();
    let after_one = s.last_revocation_seq().await.unwrap();
    let e = s
        .revoke(RevocationTarget::Session("s1"), "alice", "twice")
        .await
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "session `s1` is already revoked; nothing changed"
    );
    for (actor, reason) in [("", "r"), ("a\u{7}", "r"), ("a", &"x".repeat(2000)[..])] {
        let e = s
            .revoke(RevocationTarget::Session("s2"), actor, reason)
            .await
            .unwrap_err();
        assert!(matches!(e, StoreError::InvalidInput { .. }), "{e}");
    }
    assert!(after_one > before);
    assert_eq!(s.last_revocation_seq().await.unwrap(), after_one);
    assert_eq!(s.revocation_history("s1").await.unwrap().len(), 1);
    assert!(!s.is_revoked("s2").await.unwrap());
}

async fn the_audit_trail_cannot_be_rewritten(db: &TestDb) {
    setup(db).await;
    db.store
        .revoke(RevocationTarget::Session("s1"), "alice", "x")
        .await
        .unwrap();
    // Straight SQL, as a careless operator would: the schema refuses.
    let update = "UPDATE revocation_events SET actor = 'mallory'";
    let delete = "DELETE FROM revocation_events";
    for sql in [update, delete] {
        use sqlx::Connection as _;
        let refused: Result<(), String> = if db.url.starts_with("sqlite") {
            let mut c = sqlx::SqliteConnection::connect(&db.url).await.unwrap();
            sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                .execute(&mut c)
                .await
                .map(drop)
                .map_err(|e| e.to_string())
        } else {
            let mut c = sqlx::PgConnection::connect(&db.url).await.unwrap();
            sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                .execute(&mut c)
                .await
                .map(drop)
                .map_err(|e| e.to_string())
        };
        let e = refused.unwrap_err();
        assert!(e.contains("append-only"), "{sql}: {e}");
    }
    let h = db.store.revocation_history("s1").await.unwrap();
    assert_eq!(h[0].actor, "alice");
}

async fn a_follower_reads_events_in_order(db: &TestDb) {
    setup(db).await;
    let s = &db.store;
    assert_eq!(s.last_revocation_seq().await.unwrap(), 0);
    s.revoke(RevocationTarget::Session("s1"), "a", "1")
        .await
        .unwrap();
    s.revoke(RevocationTarget::Session("s3"), "a", "2")
        .await
        .unwrap();
    s.restore(RevocationTarget::Session("s1"), "a", "3")
        .await
        .unwrap();
    let all = s.revocation_events(0, 0, 100).await.unwrap();
    assert_eq!(all.len(), 3);
    assert!(all.windows(2).all(|w| w[0].seq < w[1].seq));
    let last = all[2].seq;
    assert_eq!(s.last_revocation_seq().await.unwrap(), last);
    // Nothing after the last seq; the recent ones again from the start (the look-back); none
    // recorded in the future.
    assert!(s.revocation_events(last, 0, 100).await.unwrap().is_empty());
    let recent = all[0].at - 30;
    assert_eq!(s.revocation_events(0, recent, 100).await.unwrap(), all);
    assert!(
        s.revocation_events(0, i64::MAX, 100)
            .await
            .unwrap()
            .is_empty()
    );
    // Paged by seq.
    let first = s.revocation_events(0, 0, 2).await.unwrap();
    assert_eq!(first, all[..2]);
    let rest = s.revocation_events(first[1].seq, 0, 2).await.unwrap();
    assert_eq!(rest, all[2..]);
    assert!(s.revocation_events(0, 0, 0).await.is_err());
}
