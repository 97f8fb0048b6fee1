//! Models: timestamps, serialization, relations, typed conflicts, the status CHECK.

use aistory_tests::{Backend, TestDatabase, backend_tests};
use entity::prelude::*;
use entity::{photo, user};
use migration::{Migrator, MigratorTrait};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ConnectionTrait, DatabaseConnection, EntityTrait,
    IntoActiveModel, ModelTrait,
};
use service::ServiceError;
use service::users::{NewUser, create_user};

backend_tests!(
    timestamps_are_set_on_insert_and_update,
    to_dict_never_shows_the_password_hash,
    duplicate_username_or_email_is_a_typed_conflict,
    unknown_status_is_refused_by_the_database,
    a_user_has_many_photos_deleted_with_the_user,
);

async fn migrated(backend: Backend) -> (TestDatabase, DatabaseConnection) {
    let database = TestDatabase::create(backend).await;
    let db = database.connect().await;
    Migrator::up(&db, None).await.unwrap();
    (database, db)
}

fn new_user(name: &str) -> NewUser {
    NewUser {
        username: name.to_owned(),
        email: format!("{name}@Example.com"),
        password_hash: "$argon2id$fake".to_owned(),
    }
}

async fn add_photo(db: &DatabaseConnection, user_id: i64, key: &str) -> photo::Model {
    photo::ActiveModel {
        user_id: Set(user_id),
        object_key: Set(key.to_owned()),
        ..sea_orm::ActiveModelBehavior::new()
    }
    .insert(db)
    .await
    .unwrap()
}

async fn timestamps_are_set_on_insert_and_update(backend: Backend) {
    let (_database, db) = migrated(backend).await;
    let before = chrono::Utc::now() - chrono::Duration::seconds(1);
    let created = create_user(&db, new_user("tim")).await.unwrap();
    assert!(created.created_at >= before);
    assert_eq!(created.created_at, created.updated_at);
    assert_eq!(
        created.email, "tim@example.com",
        "email is stored lower-case"
    );

    // Read back: same instant, in UTC.
    let read = User::find_by_id(created.id)
        .one(&db)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(read.created_at, created.created_at);

    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let mut active = read.into_active_model();
    active.email = Set("tim2@example.com".to_owned());
    let updated = active.update(&db).await.unwrap();
    assert_eq!(
        updated.created_at, created.created_at,
        "created_at never changes"
    );
    assert!(
        updated.updated_at > created.updated_at,
        "updated_at moves on update"
    );

    let photo = add_photo(&db, created.id, "users/1/photos/a.jpg").await;
    assert_eq!(
        photo.status,
        PhotoStatus::Pending,
        "a new photo starts pending"
    );
    assert_eq!(photo.created_at, photo.updated_at);
}

async fn to_dict_never_shows_the_password_hash(backend: Backend) {
    let (_database, db) = migrated(backend).await;
    let user = create_user(&db, new_user("dora")).await.unwrap();
    let dict = user.to_dict();
    assert_eq!(dict["username"], "dora");
    assert_eq!(dict["id"], user.id);
    assert!(dict.contains_key("created_at"));
    assert!(!dict.contains_key("password_hash"), "{dict:?}");
    let json = serde_json::to_string(&user).unwrap();
    assert!(!json.contains("argon2"), "{json}");

    let photo = add_photo(&db, user.id, "users/1/photos/d.png").await;
    let dict = photo.to_dict();
    assert_eq!(dict["status"], "pending");
    assert_eq!(dict["object_key"], "users/1/photos/d.png");
}

async fn duplicate_username_or_email_is_a_typed_conflict(backend: Backend) {
    let (_database, db) = migrated(backend).await;
    create_user(&db, new_user("sam")).await.unwrap();

    let same_name = NewUser {
        email: "other@example.com".to_owned(),
        ..new_user("sam")
    };
    match create_user(&db, same_name).await {
        Err(ServiceError::Taken { field, .. }) => assert_eq!(field, "username"),
        other => panic!("expected a username conflict, got {other:?}"),
    }
    // Same address in another case: emails are compared lower-case.
    let same_email = NewUser {
        email: "SAM@EXAMPLE.COM".to_owned(),
        ..new_user("samuel")
    };
    match create_user(&db, same_email).await {
        Err(ServiceError::Taken { field, .. }) => assert_eq!(field, "email"),
        other => panic!("expected an email conflict, got {other:?}"),
    }
}

async fn unknown_status_is_refused_by_the_database(backend: Backend) {
    let (_database, db) = migrated(backend).await;
    let user = create_user(&db, new_user("ursula")).await.unwrap();
    let insert = format!(
        "INSERT INTO photos (user_id, object_key, status, created_at, updated_at) \
         VALUES ({}, 'k1', 'bogus', '2026-01-01 00:00:00', '2026-01-01 00:00:00')",
        user.id
    );
    let result = db.execute_unprepared(&insert).await;
    assert!(result.is_err(), "the database accepted status 'bogus'");
    let valid = insert.replace("'bogus'", "'uploaded'");
    db.execute_unprepared(&valid).await.unwrap();
}

async fn a_user_has_many_photos_deleted_with_the_user(backend: Backend) {
    let (_database, db) = migrated(backend).await;
    let owner = create_user(&db, new_user("olga")).await.unwrap();
    let other = create_user(&db, new_user("otto")).await.unwrap();
    add_photo(&db, owner.id, "users/o/photos/1.jpg").await;
    add_photo(&db, owner.id, "users/o/photos/2.jpg").await;
    add_photo(&db, other.id, "users/t/photos/1.jpg").await;

    let photos = owner.find_related(Photo).all(&db).await.unwrap();
    assert_eq!(photos.len(), 2);
    let back = photos[0]
        .find_related(User)
        .one(&db)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(back.id, owner.id);

    user::Entity::delete_by_id(owner.id)
        .exec(&db)
        .await
        .unwrap();
    let left = Photo::find().all(&db).await.unwrap();
    assert_eq!(
        left.len(),
        1,
        "the owner's photos are deleted with the owner"
    );
    assert_eq!(left[0].user_id, other.id);
}
