//! Minting tokens the way a Clerk JWT template does: Clerk's default claims, the template's
//! custom claims, HS256 with the template's signing key, and Clerk's lifetime and clock skew.

use std::sync::Arc;

use serde_json::{Map, Value, json};

use crate::clock::{Clock, SystemClock};
use crate::forge::{CLERK_HEADER_JSON, b64url, sign_parts};
use crate::id::{ClerkId, ClerkIdEra, new_user_id, random_hex};
use crate::secret::Secret;
use crate::verify::{INSFORGE_AUDIENCE, Verifier};

/// Name of the Clerk JWT template the app requests (`getToken({ template: 'insforge' })`).
pub const INSFORGE_TEMPLATE_NAME: &str = "insforge";
/// Clerk's default token lifetime: `exp = iat + 60`.
pub const DEFAULT_LIFETIME_SECS: u32 = 60;
/// Clerk's default allowed clock skew: `nbf = iat - 5`.
pub const DEFAULT_CLOCK_SKEW_SECS: u32 = 5;
/// A development instance's Frontend API URL, used as `iss` unless configured.
pub const DEFAULT_ISSUER: &str = "https://clerk-rls-test.clerk.accounts.dev";
/// The page origin used as `azp` unless configured (Vite's dev server).
pub const DEFAULT_AZP: &str = "http://localhost:5173";
/// Claims Clerk sets itself; a template may not define them. `sid` is included because older
/// Clerk tokens carried it as a default claim.
pub const RESERVED_CLAIMS: [&str; 8] = ["azp", "exp", "iat", "iss", "jti", "nbf", "sub", "sid"];

/// Characters of hex in a `jti` (Clerk's examples have 20).
const JTI_BYTES: usize = 10;

/// Which set of default claims Clerk adds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum TokenShape {
    /// Current tokens: a random `jti`, no `sid`.
    #[default]
    Current,
    /// Older template tokens: a session id `sid` (`sess_…`) and no `jti`.
    Legacy,
}

/// The signed-in user a token is minted for.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ClerkUser {
    /// Becomes `sub`. Deliberately not validated: tests may use any string, including ones no
    /// Clerk id could be (quotes, SQL, unicode), to probe the code downstream.
    pub id: String,
    /// Becomes the `email` claim when set (as `{{user.primary_email_address}}` would).
    pub email: Option<String>,
    /// `sid` for [`TokenShape::Legacy`] tokens; a fresh legacy-era `sess_2…` id when unset.
    pub session_id: Option<String>,
    /// Extra claims merged over the template's, e.g. `org_id` or metadata. Reserved names are
    /// refused by [`ClerkTemplate::mint`]; see [`ClerkTemplate::mint_with_overrides`] to forge them.
    pub extra_claims: Map<String, Value>,
}

impl ClerkUser {
    /// A user with the given id and nothing else.
    pub fn new(id: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            ..Self::default()
        }
    }

    /// A user with a fresh current-era id (`user_3…`).
    pub fn generate() -> Self {
        Self::new(new_user_id())
    }

    /// Sets the primary email address.
    pub fn with_email(mut self, email: impl Into<String>) -> Self {
        self.email = Some(email.into());
        self
    }

    /// Sets the session id used as `sid` in legacy-shaped tokens.
    pub fn with_session_id(mut self, session_id: impl Into<String>) -> Self {
        self.session_id = Some(session_id.into());
        self
    }

    /// Adds one extra claim.
    pub fn with_claim(mut self, name: impl Into<String>, value: impl Into<Value>) -> Self {
        self.extra_claims.insert(name.into(), value.into());
        self
    }
}

/// Why a template could not be built or a token not minted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MintError {
    /// A template claim (or a user's extra claim) uses a name Clerk sets itself.
    #[error("claim {0:?} is reserved: Clerk sets it on every token and refuses it in a template")]
    ReservedClaim(String),
    /// Template claims must be a JSON object.
    #[error("template claims must be a JSON object")]
    ClaimsNotObject,
    /// The crypto backend failed to sign (the message never contains the key).
    #[error("signing failed: {0}")]
    Signing(String),
}

impl MintError {
    /// Stable machine-readable name of the failure.
    pub fn code(&self) -> &'static str {
        match self {
            Self::ReservedClaim(_) => "reserved_claim",
            Self::ClaimsNotObject => "claims_not_object",
            Self::Signing(_) => "signing_failed",
        }
    }
}

/// A Clerk JWT template: name, custom claims, lifetime, clock skew and HS256 signing key.
///
/// Settings are changed with the `with_*` builder methods; the defaults are Clerk's.
#[derive(Debug, Clone)]
pub struct ClerkTemplate {
    name: String,
    claims: Map<String, Value>,
    lifetime_secs: u32,
    clock_skew_secs: u32,
    issuer: String,
    azp: Option<String>,
    shape: TokenShape,
    secret: Secret,
    clock: Arc<dyn Clock>,
}

impl ClerkTemplate {
    /// A template with custom `claims` (a JSON object), refusing reserved claim names as
    /// Clerk's dashboard does.
    pub fn new(name: impl Into<String>, claims: Value, secret: Secret) -> Result<Self, MintError> {
        let Value::Object(claims) = claims else {
            return Err(MintError::ClaimsNotObject);
        };
        refuse_reserved(&claims)?;
        Ok(Self::with_checked_claims(name.into(), claims, secret))
    }

    /// Clerk's defaults around claims already known to be free of reserved names.
    fn with_checked_claims(name: String, claims: Map<String, Value>, secret: Secret) -> Self {
        Self {
            name,
            claims,
            lifetime_secs: DEFAULT_LIFETIME_SECS,
            clock_skew_secs: DEFAULT_CLOCK_SKEW_SECS,
            issuer: DEFAULT_ISSUER.to_owned(),
            azp: Some(DEFAULT_AZP.to_owned()),
            shape: TokenShape::Current,
            secret,
            clock: Arc::new(SystemClock),
        }
    }

    /// The template the InsForge integration uses: named `insforge`, claims
    /// `{"role":"authenticated","aud":"insforge-api"}`, signed with InsForge's `JWT_SECRET`.
    pub fn insforge(secret: Secret) -> Self {
        let mut claims = Map::new();
        claims.insert("role".into(), json!("authenticated"));
        claims.insert("aud".into(), json!(INSFORGE_AUDIENCE));
        Self::with_checked_claims(INSFORGE_TEMPLATE_NAME.to_owned(), claims, secret)
    }

    /// Token lifetime: `exp = iat + secs`.
    pub fn with_lifetime_secs(mut self, secs: u32) -> Self {
        self.lifetime_secs = secs;
        self
    }

    /// Allowed clock skew: `nbf = iat - secs`.
    pub fn with_clock_skew_secs(mut self, secs: u32) -> Self {
        self.clock_skew_secs = secs;
        self
    }

    /// The `iss` claim (the instance's Frontend API URL).
    pub fn with_issuer(mut self, issuer: impl Into<String>) -> Self {
        self.issuer = issuer.into();
        self
    }

    /// The `azp` claim (the origin of the page that asked for the token).
    pub fn with_azp(mut self, azp: impl Into<String>) -> Self {
        self.azp = Some(azp.into());
        self
    }

    /// Leaves `azp` out, as Clerk does when the request had no origin.
    pub fn without_azp(mut self) -> Self {
        self.azp = None;
        self
    }

    /// Current (`jti`) or legacy (`sid`, no `jti`) default claims.
    pub fn with_shape(mut self, shape: TokenShape) -> Self {
        self.shape = shape;
        self
    }

    /// The clock `iat` is read from (share a [`crate::FixedClock`] with the verifier in tests).
    pub fn with_clock(mut self, clock: impl Clock + 'static) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// The template's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The template's custom claims.
    pub fn claims(&self) -> &Map<String, Value> {
        &self.claims
    }

    /// Token lifetime in seconds.
    pub fn lifetime_secs(&self) -> u32 {
        self.lifetime_secs
    }

    /// Allowed clock skew in seconds.
    pub fn clock_skew_secs(&self) -> u32 {
        self.clock_skew_secs
    }

    /// The `iss` value.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The `azp` value, if any.
    pub fn azp(&self) -> Option<&str> {
        self.azp.as_deref()
    }

    /// Which default claims are added.
    pub fn shape(&self) -> TokenShape {
        self.shape
    }

    /// The signing key.
    pub fn secret(&self) -> &Secret {
        &self.secret
    }

    /// The clock's current time, as `iat` of a token minted now would be.
    pub fn now(&self) -> i64 {
        self.clock.now()
    }

    /// An InsForge-like [`Verifier`] with this template's secret and clock.
    pub fn verifier(&self) -> Verifier {
        Verifier::new(self.secret.clone()).with_shared_clock(Arc::clone(&self.clock))
    }

    /// The claim set [`ClerkTemplate::mint`] would sign for `user` now.
    pub fn claims_for(&self, user: &ClerkUser) -> Result<Map<String, Value>, MintError> {
        refuse_reserved(&user.extra_claims)?;
        let mut claims = self.claims.clone();
        if let Some(email) = &user.email {
            claims.insert("email".into(), json!(email));
        }
        for (name, value) in &user.extra_claims {
            claims.insert(name.clone(), value.clone());
        }
        // Clerk's defaults go in last: a template can never override them.
        let iat = self.clock.now();
        claims.insert("iat".into(), json!(iat));
        claims.insert(
            "nbf".into(),
            json!(iat.saturating_sub(i64::from(self.clock_skew_secs))),
        );
        claims.insert(
            "exp".into(),
            json!(iat.saturating_add(i64::from(self.lifetime_secs))),
        );
        claims.insert("iss".into(), json!(self.issuer));
        claims.insert("sub".into(), json!(user.id));
        if let Some(azp) = &self.azp {
            claims.insert("azp".into(), json!(azp));
        }
        match self.shape {
            TokenShape::Current => {
                claims.insert("jti".into(), json!(random_hex(JTI_BYTES)));
            }
            TokenShape::Legacy => {
                let sid = user.session_id.clone().unwrap_or_else(|| {
                    ClerkId::generate_in_era("sess", ClerkIdEra::Legacy).into_string()
                });
                claims.insert("sid".into(), json!(sid));
            }
        }
        Ok(claims)
    }

    /// A token for `user`, exactly as Clerk's `getToken({ template })` would return it.
    pub fn mint(&self, user: &ClerkUser) -> Result<String, MintError> {
        let claims = self.claims_for(user)?;
        self.sign_claims(&Value::Object(claims))
    }

    /// FOR NEGATIVE TESTS: mints as [`ClerkTemplate::mint`], then sets every claim in
    /// `overrides` over the result, reserved ones included (a numeric `sub`, a past `exp`, a
    /// `role` of `project_admin`…). Clerk would never issue such a token.
    ///
    /// To remove a claim, take [`ClerkTemplate::claims_for`], edit it, and use
    /// [`ClerkTemplate::sign_claims`].
    pub fn mint_with_overrides(
        &self,
        user: &ClerkUser,
        overrides: Map<String, Value>,
    ) -> Result<String, MintError> {
        let mut claims = self.claims_for(user)?;
        claims.extend(overrides);
        self.sign_claims(&Value::Object(claims))
    }

    /// Signs any JSON value as the payload under Clerk's header (`{"alg":"HS256","typ":"JWT"}`)
    /// with this template's key. No claim is added or checked.
    pub fn sign_claims(&self, claims: &Value) -> Result<String, MintError> {
        // Value's Display is its compact JSON and cannot fail, unlike serde_json::to_vec.
        sign_parts(
            &self.secret,
            &b64url(CLERK_HEADER_JSON),
            &b64url(claims.to_string()),
        )
    }
}

fn refuse_reserved(claims: &Map<String, Value>) -> Result<(), MintError> {
    match claims
        .keys()
        .find(|k| RESERVED_CLAIMS.contains(&k.as_str()))
    {
        Some(name) => Err(MintError::ReservedClaim(name.clone())),
        None => Ok(()),
    }
}
