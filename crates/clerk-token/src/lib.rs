//! Clerk-shaped HS256 tokens: mint them exactly as a Clerk JWT template named `insforge` does,
//! and verify them the way InsForge 2.3.x does before a request reaches PostgREST.
//!
//! The two halves are meant to be used together in tests:
//!
//! ```
//! use clerk_token::{ClerkTemplate, ClerkUser, FixedClock, Secret, Verifier};
//!
//! let secret = Secret::generate();
//! let clock = FixedClock::new(1_750_000_000);
//! let template = ClerkTemplate::insforge(secret.clone()).with_clock(clock.clone());
//! let user = ClerkUser::new(clerk_token::new_user_id()).with_email("ada@example.com");
//! let token = template.mint(&user)?;
//!
//! let verifier = Verifier::new(secret).with_clock(clock.clone());
//! let identity = verifier.verify(&token)?;
//! assert_eq!(identity.sub, user.id);
//! assert_eq!(identity.role, "authenticated");
//!
//! clock.advance(60); // Clerk's default lifetime: the token is now expired
//! assert_eq!(verifier.verify(&token).unwrap_err().code(), "expired");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Everything that can fail has a typed error with a stable `code()`, and no error message ever
//! contains a token or a secret.

#![forbid(unsafe_code)]

mod bearer;
mod clock;
pub mod forge;
mod id;
mod json;
mod mint;
mod secret;
mod users;
mod verify;

pub use bearer::{BearerError, parse_bearer};
pub use clock::{Clock, FixedClock, SystemClock};
pub use id::{
    CLERK_ID_BODY_LEN, ClerkId, ClerkIdEra, ClerkIdError, new_org_id, new_session_id, new_user_id,
};
pub use mint::{
    ClerkTemplate, ClerkUser, DEFAULT_AZP, DEFAULT_CLOCK_SKEW_SECS, DEFAULT_ISSUER,
    DEFAULT_LIFETIME_SECS, INSFORGE_TEMPLATE_NAME, MintError, RESERVED_CLAIMS, TokenShape,
};
pub use secret::{MIN_SECRET_CHARS, Secret, SecretError};
pub use users::{KnownUser, UsersFileError, read_users};
pub use verify::{
    DEFAULT_MAX_TOKEN_BYTES, DEFAULT_ROLE, INSFORGE_AUDIENCE, Identity, TokenError, Verifier,
};
