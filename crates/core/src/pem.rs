//! PEM certificate blocks, as the gateway and the CLI read them.

/// The DER bodies of every `CERTIFICATE` block of a PEM text, in order.
pub fn pem_certificates(pem: &[u8]) -> Result<Vec<Vec<u8>>, String> {
    let mut reader = pem;
    rustls_pemfile::certs(&mut reader)
        .map(|c| c.map(|c| c.to_vec()).map_err(|e| format!("bad PEM: {e}")))
        .collect()
}
