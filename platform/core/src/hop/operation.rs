//! Signed operations: the caller of one subscription on a shared websocket.
//!
//! The router opens a few websockets per subgraph replica and carries
//! every caller's subscriptions over them. The upgrade request is signed
//! as any hop request, for the router itself (anonymous); it says nothing
//! about the callers. So each `subscribe` message carries, in its
//! payload's `extensions`, a [`SignedOperation`] under [`EXTENSION`]: the
//! exact JSON text of the operation (`query`, `operationName`,
//! `variables`, `extensions`) and the headers a hop request with that text
//! as its body would carry — identity headers, `Content-Digest`,
//! `Signature-Input`, `Signature` — signed as a `POST` to the websocket's
//! path and addressed (`tag`) to the subgraph.
//!
//! The subgraph verifies it with the same [`HopVerifier`] as an HTTP
//! request (key, window, nonce, digest, identity headers covered) and then
//! runs the operation *the signature covers*, as the caller it names. The
//! rest of the message's payload is not trusted: a `query` beside it is
//! only there because the protocol requires one.

use std::collections::BTreeMap;

use http::{HeaderMap, HeaderName, HeaderValue, Method, Uri};
use hyper::body::Bytes;
use serde::{Deserialize, Serialize};

use super::{HopError, HopSigner, HopVerifier, SignedBy};
use crate::identity::{AuthError, Identity, forward_identity, forwarded_identity};

/// The key of a [`SignedOperation`] in a `subscribe` payload's `extensions`.
pub const EXTENSION: &str = "shopgraphHop";

/// An operation and its hop signature, as one `subscribe` message carries
/// them (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedOperation {
    /// The operation's JSON text, exactly as signed.
    pub operation: String,
    /// Lower-case header name → value: what a hop request with
    /// [`SignedOperation::operation`] as its body would carry.
    pub headers: BTreeMap<String, String>,
}

/// Why a signed operation was refused.
#[derive(Debug, thiserror::Error)]
pub enum OperationRefusal {
    /// The signature does not check out (see [`HopError`]).
    #[error(transparent)]
    Hop(#[from] HopError),
    /// The identity headers it covers cannot be read.
    #[error(transparent)]
    Identity(#[from] AuthError),
}

/// The method a signed operation is signed as: it is sent, like a `POST`,
/// with a body.
const METHOD: Method = Method::POST;

fn target(path: &str) -> Result<Uri, HopError> {
    path.parse()
        .map_err(|_| HopError::Signing(format!("`{path}` is not a request path")))
}

impl HopSigner {
    /// Signs `operation` (its JSON text) for `identity`, to be sent to the
    /// subgraph `audience` over its websocket at `path`.
    pub async fn sign_operation(
        &self,
        path: &str,
        identity: &Identity,
        operation: String,
        audience: &str,
    ) -> Result<SignedOperation, HopError> {
        let mut headers = HeaderMap::new();
        forward_identity(identity, &mut headers);
        let body = Bytes::from(operation);
        self.sign(&METHOD, &target(path)?, &mut headers, &body, audience)
            .await?;
        let headers = headers
            .iter()
            .map(|(name, value)| {
                let value = value
                    .to_str()
                    .map_err(|_| HopError::Signing(format!("header {name} is not text")))?;
                Ok((name.as_str().to_owned(), value.to_owned()))
            })
            .collect::<Result<_, HopError>>()?;
        let operation = String::from_utf8(body.to_vec())
            .map_err(|_| HopError::Signing("the operation is not UTF-8".into()))?;
        Ok(SignedOperation { operation, headers })
    }
}

impl HopVerifier {
    /// Verifies `signed`, received on the websocket at `path`: the caller
    /// it names (anonymous if none) and the signer's key. Every check of
    /// [`HopVerifier::verify`] applies, replays included.
    pub async fn verify_operation(
        &self,
        path: &str,
        signed: &SignedOperation,
    ) -> Result<(Identity, SignedBy), OperationRefusal> {
        let mut headers = HeaderMap::with_capacity(signed.headers.len());
        for (name, value) in &signed.headers {
            let name = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| HopError::Malformed(format!("`{name}` is not a header name")))?;
            let value = HeaderValue::from_str(value)
                .map_err(|_| HopError::Malformed(format!("header {name} is not a header value")))?;
            headers.insert(name, value);
        }
        let body = Bytes::copy_from_slice(signed.operation.as_bytes());
        let signed_by = self
            .verify(&METHOD, &target(path)?, &headers, &body)
            .await?;
        let identity = forwarded_identity(&headers)?.unwrap_or_default();
        Ok((identity, signed_by))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use httpsig_hyper::prelude::{AlgorithmName, PublicKey, SecretKey};

    use super::*;
    use crate::hop::HopKeyPair;
    use crate::identity::Viewer;

    const PATH: &str = "/graphql/ws";

    fn pair() -> (HopSigner, HopVerifier) {
        let keys = HopKeyPair::generate();
        let secret = SecretKey::from_pem(&AlgorithmName::Ed25519, &keys.private_pem).unwrap();
        let public = PublicKey::from_pem(&AlgorithmName::Ed25519, &keys.public_pem).unwrap();
        let validity = Duration::from_secs(30);
        (
            HopSigner::new(secret, validity),
            HopVerifier::new("notification", vec![public], validity),
        )
    }

    fn alice() -> Identity {
        Identity::User(Viewer::from_claims("alice".into(), vec!["customer".into()]).unwrap())
    }

    const OPERATION: &str = r#"{"query":"subscription { notificationAdded { id } }"}"#;

    #[tokio::test]
    async fn a_signed_operation_names_its_caller_once() {
        let (signer, verifier) = pair();
        let signed = signer
            .sign_operation(PATH, &alice(), OPERATION.into(), "notification")
            .await
            .unwrap();
        let (identity, _) = verifier.verify_operation(PATH, &signed).await.unwrap();
        assert_eq!(identity, alice());
        // The same message again is a replay.
        assert!(matches!(
            verifier.verify_operation(PATH, &signed).await,
            Err(OperationRefusal::Hop(HopError::Replayed))
        ));
    }

    #[tokio::test]
    async fn a_changed_operation_caller_audience_or_path_is_refused() {
        let (signer, verifier) = pair();
        let alice = alice();
        let sign = || signer.sign_operation(PATH, &alice, OPERATION.into(), "notification");

        let mut other_query = sign().await.unwrap();
        other_query.operation = OPERATION.replace("id", "title");
        assert!(matches!(
            verifier.verify_operation(PATH, &other_query).await,
            Err(OperationRefusal::Hop(HopError::BodyMismatch))
        ));

        let mut other_caller = sign().await.unwrap();
        other_caller
            .headers
            .insert(crate::identity::USER_ID_HEADER.into(), "mallory".into());
        assert!(matches!(
            verifier.verify_operation(PATH, &other_caller).await,
            Err(OperationRefusal::Hop(HopError::BadSignature))
        ));

        let mut added_role = sign().await.unwrap();
        added_role
            .headers
            .insert(crate::identity::USER_ROLES_HEADER.into(), "admin".into());
        assert!(verifier.verify_operation(PATH, &added_role).await.is_err());

        let elsewhere = signer
            .sign_operation(PATH, &alice, OPERATION.into(), "payment")
            .await
            .unwrap();
        assert!(matches!(
            verifier.verify_operation(PATH, &elsewhere).await,
            Err(OperationRefusal::Hop(HopError::BadParameters(_)))
        ));

        let signed = sign().await.unwrap();
        assert!(matches!(
            verifier.verify_operation("/graphql", &signed).await,
            Err(OperationRefusal::Hop(HopError::BadSignature))
        ));

        let mut unsigned = sign().await.unwrap();
        unsigned.headers.remove("signature");
        assert!(matches!(
            verifier.verify_operation(PATH, &unsigned).await,
            Err(OperationRefusal::Hop(HopError::Unsigned))
        ));
    }

    #[tokio::test]
    async fn an_anonymous_operation_stays_anonymous() {
        let (signer, verifier) = pair();
        let signed = signer
            .sign_operation(PATH, &Identity::Anonymous, OPERATION.into(), "notification")
            .await
            .unwrap();
        let (identity, _) = verifier.verify_operation(PATH, &signed).await.unwrap();
        assert_eq!(identity, Identity::Anonymous);
    }
}
