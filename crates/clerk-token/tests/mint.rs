//! Minted tokens must look exactly like Clerk's `insforge` template tokens: header bytes, every
//! default claim, the template's claims, and Clerk's lifetime and skew.

// In tests a panic is the failure report, so unwrapping is the point.
#![allow(clippy::unwrap_used)]

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use clerk_token::forge::CLERK_HEADER_JSON;
use clerk_token::{
    ClerkId, ClerkIdEra, ClerkTemplate, ClerkUser, FixedClock, MintError, RESERVED_CLAIMS, Secret,
    TokenShape,
};
use serde_json::{Map, Value, json};

const NOW: i64 = 1_750_000_000;

fn secret() -> Secret {
    Secret::new("mint-tests-secret-mint-tests-secret-0123").unwrap()
}

fn template(clock: &FixedClock) -> ClerkTemplate {
    ClerkTemplate::insforge(secret()).with_clock(clock.clone())
}

/// Splits and decodes a token without any help from the crate under test.
fn decode(token: &str) -> (String, Map<String, Value>) {
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3, "{token}");
    let header = String::from_utf8(URL_SAFE_NO_PAD.decode(parts[0]).unwrap()).unwrap();
    let payload: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
    let Value::Object(claims) = payload else {
        panic!("payload is not an object")
    };
    (header, claims)
}

fn keys(claims: &Map<String, Value>) -> Vec<&str> {
    let mut k: Vec<&str> = claims.keys().map(String::as_str).collect();
    k.sort_unstable();
    k
}

fn is_lower_hex(s: &str) -> bool {
    s.bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

#[test]
fn insforge_token_has_clerks_exact_shape() {
    let clock = FixedClock::new(NOW);
    let user = ClerkUser::new("user_2GIpXOEpVyJw51rkZn9Kmnc6Sxr");
    let token = template(&clock).mint(&user).unwrap();
    let (header, claims) = decode(&token);

    assert_eq!(header, r#"{"alg":"HS256","typ":"JWT"}"#);
    assert_eq!(header, CLERK_HEADER_JSON);
    assert_eq!(
        keys(&claims),
        [
            "aud", "azp", "exp", "iat", "iss", "jti", "nbf", "role", "sub"
        ]
    );
    assert_eq!(claims["aud"], "insforge-api");
    assert_eq!(claims["role"], "authenticated");
    assert_eq!(claims["sub"], "user_2GIpXOEpVyJw51rkZn9Kmnc6Sxr");
    assert_eq!(claims["iss"], "https://clerk-rls-test.clerk.accounts.dev");
    assert_eq!(claims["azp"], "http://localhost:5173");
    assert_eq!(claims["iat"], json!(NOW));
    assert_eq!(claims["nbf"], json!(NOW - 5));
    assert_eq!(claims["exp"], json!(NOW + 60));
    let jti = claims["jti"].as_str().unwrap();
    assert_eq!(jti.len(), 20);
    assert!(is_lower_hex(jti), "{jti}");
}

#[test]
fn timestamps_are_integers_not_floats() {
    let clock = FixedClock::new(NOW);
    let token = template(&clock).mint(&ClerkUser::generate()).unwrap();
    let payload = URL_SAFE_NO_PAD
        .decode(token.split('.').nth(1).unwrap())
        .unwrap();
    let text = String::from_utf8(payload).unwrap();
    assert!(text.contains(&format!("\"iat\":{NOW},")), "{text}");
    assert!(text.contains(&format!("\"exp\":{},", NOW + 60)), "{text}");
}

#[test]
fn every_mint_gets_a_fresh_jti() {
    let clock = FixedClock::new(NOW);
    let t = template(&clock);
    let user = ClerkUser::generate();
    let (_, a) = decode(&t.mint(&user).unwrap());
    let (_, b) = decode(&t.mint(&user).unwrap());
    assert_ne!(a["jti"], b["jti"]);
}

#[test]
fn email_goes_into_the_email_claim() {
    let clock = FixedClock::new(NOW);
    let user = ClerkUser::generate().with_email("ada@example.com");
    let (_, claims) = decode(&template(&clock).mint(&user).unwrap());
    assert_eq!(claims["email"], "ada@example.com");
}

#[test]
fn legacy_shape_has_sid_and_no_jti() {
    let clock = FixedClock::new(NOW);
    let t = template(&clock).with_shape(TokenShape::Legacy);
    let (_, claims) = decode(&t.mint(&ClerkUser::generate()).unwrap());
    assert!(!claims.contains_key("jti"));
    let sid = ClerkId::parse(claims["sid"].as_str().unwrap()).unwrap();
    assert_eq!(sid.prefix(), "sess");
    assert_eq!(sid.era(), Some(ClerkIdEra::Legacy));

    let user = ClerkUser::generate().with_session_id("sess_2abcdefghijklmnopqrstuvwxyz");
    let (_, claims) = decode(&t.mint(&user).unwrap());
    assert_eq!(claims["sid"], "sess_2abcdefghijklmnopqrstuvwxyz");
}

#[test]
fn settings_change_the_default_claims() {
    let clock = FixedClock::new(NOW);
    let t = template(&clock)
        .with_lifetime_secs(3600)
        .with_clock_skew_secs(0)
        .with_issuer("https://clerk.example.com")
        .without_azp();
    let (_, claims) = decode(&t.mint(&ClerkUser::generate()).unwrap());
    assert_eq!(claims["nbf"], json!(NOW));
    assert_eq!(claims["exp"], json!(NOW + 3600));
    assert_eq!(claims["iss"], "https://clerk.example.com");
    assert!(!claims.contains_key("azp"));

    let (_, claims) = decode(
        &t.with_azp("https://app.example.com")
            .mint(&ClerkUser::generate())
            .unwrap(),
    );
    assert_eq!(claims["azp"], "https://app.example.com");
}

#[test]
fn iat_follows_the_clock() {
    let clock = FixedClock::new(NOW);
    let t = template(&clock);
    clock.advance(100);
    assert_eq!(t.now(), NOW + 100);
    let (_, claims) = decode(&t.mint(&ClerkUser::generate()).unwrap());
    assert_eq!(claims["iat"], json!(NOW + 100));
    assert_eq!(claims["nbf"], json!(NOW + 95));
}

#[test]
fn any_user_id_string_is_used_verbatim() {
    let clock = FixedClock::new(NOW);
    let t = template(&clock);
    for id in [
        "not-a-uuid",
        "6f1c0a3e-8d6b-4f6e-9a53-0c2b7d9b1e55",
        "user'; drop table todos; --",
        "ユーザー\u{0}\"\\",
        " ",
    ] {
        let (_, claims) = decode(&t.mint(&ClerkUser::new(id)).unwrap());
        assert_eq!(claims["sub"], id);
    }
}

#[test]
fn reserved_claims_are_refused_in_a_template() {
    for name in RESERVED_CLAIMS {
        let err = ClerkTemplate::new("t", json!({ name: "x" }), secret()).unwrap_err();
        assert_eq!(err, MintError::ReservedClaim(name.to_owned()));
        assert_eq!(err.code(), "reserved_claim");
    }
    assert_eq!(RESERVED_CLAIMS.len(), 8);
}

#[test]
fn template_claims_must_be_an_object() {
    let err = ClerkTemplate::new("t", json!(["role"]), secret()).unwrap_err();
    assert_eq!(err, MintError::ClaimsNotObject);
}

#[test]
fn custom_template_claims_are_merged() {
    let clock = FixedClock::new(NOW);
    let t = ClerkTemplate::new(
        "custom",
        json!({"role": "authenticated", "org_id": null, "meta": {"plan": "pro"}}),
        secret(),
    )
    .unwrap()
    .with_clock(clock.clone());
    assert_eq!(t.name(), "custom");
    let (_, claims) = decode(&t.mint(&ClerkUser::generate()).unwrap());
    assert_eq!(claims["org_id"], Value::Null);
    assert_eq!(claims["meta"]["plan"], "pro");
    assert!(!claims.contains_key("aud"));
}

#[test]
fn user_extra_claims_merge_but_cannot_use_reserved_names() {
    let clock = FixedClock::new(NOW);
    let t = template(&clock);
    let user = ClerkUser::generate().with_claim("org_id", "org_3x");
    let (_, claims) = decode(&t.mint(&user).unwrap());
    assert_eq!(claims["org_id"], "org_3x");

    let user = ClerkUser::generate().with_claim("sub", 42);
    assert_eq!(
        t.mint(&user).unwrap_err(),
        MintError::ReservedClaim("sub".into())
    );
}

#[test]
fn overrides_can_forge_reserved_claims_on_purpose() {
    let clock = FixedClock::new(NOW);
    let t = template(&clock);
    let mut overrides = Map::new();
    overrides.insert("sub".into(), json!(42));
    overrides.insert("role".into(), json!("project_admin"));
    overrides.insert("exp".into(), json!(NOW - 1));
    let (_, claims) = decode(
        &t.mint_with_overrides(&ClerkUser::generate(), overrides)
            .unwrap(),
    );
    assert_eq!(claims["sub"], json!(42));
    assert_eq!(claims["role"], "project_admin");
    assert_eq!(claims["exp"], json!(NOW - 1));
    // The rest of the Clerk shape is still there.
    assert_eq!(claims["aud"], "insforge-api");
    assert_eq!(claims["nbf"], json!(NOW - 5));
}

#[test]
fn minted_tokens_verify_with_jsonwebtoken_independently() {
    // Cross-check the signature with jsonwebtoken's own decode path, not ours.
    let clock = FixedClock::at_system_now();
    let token = template(&clock).mint(&ClerkUser::generate()).unwrap();
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
    validation.set_audience(&["insforge-api"]);
    let data = jsonwebtoken::decode::<Value>(
        &token,
        &jsonwebtoken::DecodingKey::from_secret(secret().as_bytes()),
        &validation,
    )
    .unwrap();
    assert_eq!(data.claims["role"], "authenticated");
}
