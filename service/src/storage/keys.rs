//! Where objects live in the store: every key the application makes comes from here.
//! Keys are ours, never from a client's file name.

/// The key of a new photo of `user_id`: `users/{user_id}/photos/{uuid}.{extension}`.
pub fn photo(user_id: i64, extension: &str) -> String {
    format!(
        "users/{user_id}/photos/{}.{extension}",
        uuid::Uuid::new_v4()
    )
}

/// Where a direct upload's client writes the bytes of the photo whose key is `key`, until
/// they are checked and moved to `key`.
pub fn staging(key: &str) -> String {
    format!("staging/{key}")
}

/// The thumbnail of the photo whose key is `key` with a long side of `size` pixels: beside it
/// (under the same user prefix, so an account's deletion takes it too).
pub fn thumbnail(key: &str, size: u32) -> String {
    format!("{key}.thumb-{size}.jpg")
}

/// Every prefix under which `user_id`'s objects live (their photos and staged uploads).
pub fn user_prefixes(user_id: i64) -> Vec<String> {
    vec![
        format!("users/{user_id}"),
        format!("staging/users/{user_id}"),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_under_the_user() {
        let key = photo(7, "png");
        assert!(
            key.starts_with("users/7/photos/") && key.ends_with(".png"),
            "{key}"
        );
        assert_eq!(staging(&key), format!("staging/{key}"));
        assert!(
            user_prefixes(7)
                .iter()
                .all(|prefix| prefix.ends_with("users/7"))
        );
    }
}
