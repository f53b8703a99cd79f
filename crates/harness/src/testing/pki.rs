//! A throwaway CA and a server certificate it signed, for tests of TLS (to Postgres, to a
//! hosted API). Behind the `test-pki` feature: only tests enable it.

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};

/// A CA and a server certificate it signed for `localhost` only (not 127.0.0.1), as PEM.
#[derive(Debug, Clone)]
pub struct TestPki {
    /// The CA's certificate: what a client trusts.
    pub ca_pem: String,
    /// The server's certificate, for the DNS name `localhost`.
    pub server_cert_pem: String,
    /// The server certificate's private key (PKCS#8).
    pub server_key_pem: String,
}

/// Makes a fresh CA named `common_name` and a server certificate it signed for `localhost`.
pub fn make_pki(common_name: &str) -> Result<TestPki, rcgen::Error> {
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, common_name);
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate()?)?;
    let key = KeyPair::generate()?;
    let server = CertificateParams::new(vec!["localhost".to_owned()])?.signed_by(&key, &ca)?;
    Ok(TestPki {
        ca_pem: ca.pem(),
        server_cert_pem: server.pem(),
        server_key_pem: key.serialize_pem(),
    })
}
