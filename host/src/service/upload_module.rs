//! `UploadModule`: check a component against the contract, cheaply from
//! its sections and then by compiling it (off the async threads, holding
//! one of the broker's compile slots, or refused as `Busy` when the queue
//! for them is full), then store it as its name's next version.

use bytes::BytesMut;
use quiver_proto::api::modules::{ModuleDescription, UploadModuleRequest};
use quiver_proto::topic::validate_topic_name;
use quiver_proto::{ErrorCode, ErrorDetail, WireError};

use crate::service::Service;
use crate::storage::NewModule;
use crate::wasm::{ModuleError, precheck};

pub(crate) async fn handle(
    service: &Service,
    request: UploadModuleRequest,
    body: BytesMut,
) -> Result<ModuleDescription, WireError> {
    validate_topic_name(&request.name)
        .map_err(|e| WireError::new(ErrorCode::InvalidModule, format!("module name: {e}")))?;
    let engine = service.wasm.clone();
    let bytes = body.to_vec();
    let task_failed = |e: tokio::task::JoinError| {
        WireError::new(
            ErrorCode::UnknownServerError,
            format!("validation task failed: {e}"),
        )
    };
    // The cheap checks first: a component that breaks the contract waits
    // for no compile slot and costs no compilation.
    let (bytes, prechecked) = tokio::task::spawn_blocking(move || {
        let checked = precheck(&bytes);
        (bytes, checked)
    })
    .await
    .map_err(task_failed)?;
    let checked = match prechecked {
        Ok(()) => {
            let permit = engine
                .compile_permit()
                .await
                .map_err(|e| WireError::new(ErrorCode::Busy, e.to_string()))?;
            let (bytes, checked) = tokio::task::spawn_blocking(move || {
                let checked = engine.validate(&bytes);
                drop(permit);
                (bytes, checked)
            })
            .await
            .map_err(task_failed)?;
            checked.map(|info| (bytes, info))
        }
        Err(e) => Err(e),
    };
    let (bytes, info) = checked.map_err(|e| {
        let error = WireError::new(ErrorCode::InvalidModule, e.to_string());
        match e {
            ModuleError::TooLarge { size } => error.with_detail(ErrorDetail::Size {
                size: size as u64,
                max: u64::from(quiver_proto::limits::MAX_MODULE_BYTES),
            }),
            _ => error,
        }
    })?;
    let uploaded_at_ms = service.clock.now_ms();
    let module = NewModule {
        name: request.name,
        bytes,
        sha256: info.sha256,
        imports: info.imports,
        uploaded_at_ms,
    };
    Ok(service.storage.put_module(module).await?)
}
