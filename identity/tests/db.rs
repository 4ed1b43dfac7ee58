//! The identity tables read back what was written, on both stores: every row goes through sqlx
//! `Any` into a `FromRow` struct by column name, and ids and roles are `TEXT` on both.

use std::time::Duration;

use domain::athlete::Role;
use identity::IdentityDb;
use identity::db::RefreshError;
use sqlx::AnyPool;
use store::on_both_backends;
use store::testing::TestStore;
use uuid::Uuid;

async fn identity(t: &TestStore) -> IdentityDb {
    sqlx::any::install_default_drivers();
    IdentityDb::new(AnyPool::connect(&t.url).await.expect("connect"))
}

async fn accounts_read_back_by_email_and_by_id(t: TestStore) {
    let db = identity(&t).await;
    let id = Uuid::now_v7();
    assert!(
        db.insert_pending(id, "a@example.org", "$hash", Role::Coach)
            .await
            .unwrap()
    );
    assert!(
        !db.insert_pending(Uuid::now_v7(), "a@example.org", "$other", Role::Athlete)
            .await
            .unwrap(),
        "the email is taken"
    );
    let pending = db.account_by_email("a@example.org").await.unwrap().unwrap();
    assert_eq!(pending.account_id, id);
    assert_eq!(pending.email, "a@example.org");
    assert_eq!(pending.password_hash, "$hash");
    assert_eq!(pending.role, Role::Coach);
    assert!(!pending.active);
    assert!(pending.created_at_us > 0);

    assert!(db.activate(id).await.unwrap());
    db.set_role(id, Role::Owner).await.unwrap();
    db.set_password(id, "$new").await.unwrap();
    let active = db.account(id).await.unwrap().unwrap();
    assert!(active.active);
    assert_eq!(active.role, Role::Owner);
    assert_eq!(active.password_hash, "$new");
    assert_eq!(active.created_at_us, pending.created_at_us);
    assert!(db.account(Uuid::now_v7()).await.unwrap().is_none());
    assert!(
        db.account_by_email("b@example.org")
            .await
            .unwrap()
            .is_none()
    );
}

async fn refresh_tokens_rotate_once_and_reuse_ends_the_session(t: TestStore) {
    let db = identity(&t).await;
    let id = Uuid::now_v7();
    db.insert_pending(id, "r@example.org", "$hash", Role::Athlete)
        .await
        .unwrap();
    db.activate(id).await.unwrap();
    let (session_id, first) = db.create_session(id).await.unwrap();
    let live = db.live_session(session_id, id).await.unwrap().unwrap();
    assert_eq!((live.account_id, live.role), (id, Role::Athlete));

    let (account, same_session, second) = db.rotate_refresh(&first).await.unwrap();
    assert_eq!((account.account_id, same_session), (id, session_id));
    assert_ne!(second, first);
    assert!(matches!(
        db.rotate_refresh("no such token").await,
        Err(RefreshError::Invalid)
    ));
    match db.rotate_refresh(&first).await {
        Err(RefreshError::Reused { account_id }) => assert_eq!(account_id, id),
        other => panic!("expected reuse, got {:?}", other.map(|r| r.1)),
    }
    assert!(db.live_session(session_id, id).await.unwrap().is_none());
    assert!(matches!(
        db.rotate_refresh(&second).await,
        Err(RefreshError::Invalid)
    ));

    let (other_session, token) = db.create_session(id).await.unwrap();
    assert_eq!(db.revoke_by_refresh(&token).await.unwrap(), Some(id));
    assert!(db.live_session(other_session, id).await.unwrap().is_none());
    assert_eq!(db.revoke_by_refresh("no such token").await.unwrap(), None);
}

async fn security_log_reads_newest_first(t: TestStore) {
    let db = identity(&t).await;
    let id = Uuid::now_v7();
    db.log("registered", Some(id), Some("c1"), Some("athlete"))
        .await
        .unwrap();
    db.log("login_failed", Some(id), None, None).await.unwrap();
    db.log("login_failed", Some(Uuid::now_v7()), None, None)
        .await
        .unwrap();
    let log = db.security_log(id, 10).await.unwrap();
    let kinds: Vec<_> = log
        .iter()
        .map(|r| (r.kind.as_str(), r.detail.as_deref()))
        .collect();
    assert_eq!(
        kinds,
        [("login_failed", None), ("registered", Some("athlete"))]
    );
    assert!(log[0].at_us >= log[1].at_us);
    assert_eq!(db.security_log(id, 1).await.unwrap().len(), 1);
}

async fn failures_past_the_free_ones_block(t: TestStore) {
    let db = identity(&t).await;
    let keys = ["client:test".to_string()];
    let key = &keys[0];
    let cap = Duration::from_secs(60);
    assert_eq!(db.record_failure(key, 1, cap).await.unwrap(), 1);
    assert!(db.blocked_for(&keys).await.unwrap().is_none());
    assert_eq!(db.record_failure(key, 1, cap).await.unwrap(), 2);
    let wait = db.blocked_for(&keys).await.unwrap().unwrap();
    assert!(wait <= Duration::from_secs(1), "{wait:?}");
    db.clear_failures(key).await.unwrap();
    assert!(db.blocked_for(&keys).await.unwrap().is_none());
}

on_both_backends!(
    accounts_read_back_by_email_and_by_id,
    refresh_tokens_rotate_once_and_reuse_ends_the_session,
    security_log_reads_newest_first,
    failures_past_the_free_ones_block,
);
