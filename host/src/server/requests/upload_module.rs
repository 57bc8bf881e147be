//! `UploadModule`: compile and check a component against the contract (off
//! the async threads), then store it as its name's next version.

use std::time::{SystemTime, UNIX_EPOCH};

use bytes::BytesMut;
use quiver_proto::api::modules::{ModuleDescription, UploadModuleRequest};
use quiver_proto::topic::validate_topic_name;
use quiver_proto::{ErrorCode, ErrorDetail, WireError};

use crate::server::Context;
use crate::storage::NewModule;
use crate::wasm::ModuleError;

pub(super) async fn handle(
    context: &Context,
    request: UploadModuleRequest,
    body: BytesMut,
) -> Result<ModuleDescription, WireError> {
    validate_topic_name(&request.name)
        .map_err(|e| WireError::new(ErrorCode::InvalidModule, format!("module name: {e}")))?;
    let engine = context.wasm.clone();
    let bytes = body.to_vec();
    let (bytes, checked) = tokio::task::spawn_blocking(move || {
        let checked = engine.validate(&bytes);
        (bytes, checked)
    })
    .await
    .map_err(|e| {
        WireError::new(
            ErrorCode::UnknownServerError,
            format!("validation task failed: {e}"),
        )
    })?;
    let info = checked.map_err(|e| {
        let error = WireError::new(ErrorCode::InvalidModule, e.to_string());
        match e {
            ModuleError::TooLarge { size } => error.with_detail(ErrorDetail::Size {
                size: size as u64,
                max: u64::from(quiver_proto::limits::MAX_MODULE_BYTES),
            }),
            _ => error,
        }
    })?;
    let uploaded_at_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
    let module = NewModule {
        name: request.name,
        bytes,
        sha256: info.sha256,
        imports: info.imports,
        uploaded_at_ms,
    };
    Ok(context.storage.put_module(module).await?)
}
