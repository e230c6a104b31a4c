//! Certificates made at test time (rcgen): a CA and a certificate it signs for `localhost`
//! and 127.0.0.1, written as PEM files to a temporary directory. No key is ever committed.

use protocol::Transport;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};
use std::path::{Path, PathBuf};

/// A test CA and one server certificate it signed, as files.
pub struct TestCa {
    dir: tempfile::TempDir,
}

impl TestCa {
    /// A fresh CA (named `name`) and a server certificate for `localhost` and 127.0.0.1.
    pub fn new(name: &str) -> TestCa {
        let dir = tempfile::tempdir().expect("temporary directory");
        let ca_key = KeyPair::generate().expect("CA key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, format!("tasknode test CA {name}"));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca = params.self_signed(&ca_key).expect("CA certificate");

        let key = KeyPair::generate().expect("server key");
        let mut params =
            CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
                .expect("server params");
        params
            .distinguished_name
            .push(DnType::CommonName, "tasknode test node");
        let cert = params.signed_by(&key, &ca, &ca_key).expect("server cert");

        let write = |file: &str, text: &str| std::fs::write(dir.path().join(file), text).unwrap();
        write("ca.pem", &ca.pem());
        write("cert.pem", &cert.pem());
        write("key.pem", &key.serialize_pem());
        write(
            "combined.pem",
            &format!("{}{}", cert.pem(), key.serialize_pem()),
        );
        TestCa { dir }
    }

    /// The CA's certificate (what clients trust).
    pub fn ca(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// The server certificate.
    pub fn cert(&self) -> PathBuf {
        self.dir.path().join("cert.pem")
    }

    /// The server certificate's private key.
    pub fn key(&self) -> PathBuf {
        self.dir.path().join("key.pem")
    }

    /// Certificate and key in one file (as HAProxy takes them).
    pub fn combined(&self) -> PathBuf {
        self.dir.path().join("combined.pem")
    }

    /// Put this CA's server certificate and key where `other`'s are (for reloads).
    pub fn install_over(&self, other: &TestCa) {
        copy(&self.cert(), &other.cert());
        copy(&self.key(), &other.key());
    }

    /// A client transport that trusts this CA only.
    pub fn transport(&self) -> Transport {
        Transport::tls(protocol::transport::client_config(Some(&self.ca())).expect("client TLS"))
    }
}

fn copy(from: &Path, to: &Path) {
    std::fs::copy(from, to).unwrap_or_else(|e| panic!("copy {from:?} to {to:?}: {e}"));
}
