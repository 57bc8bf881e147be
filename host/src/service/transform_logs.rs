//! `TransformLogs`: a page of a transform's recent log lines.

use quiver_proto::WireError;
use quiver_proto::api::transforms::{TransformLogsRequest, TransformLogsResponse};
use quiver_proto::limits::{MAX_LOG_LINES_PER_READ, MAX_LOG_READ_BYTES};

use crate::service::Service;
use crate::wasm::logbook::LogQuery;

pub(crate) async fn handle(
    service: &Service,
    request: TransformLogsRequest,
) -> Result<TransformLogsResponse, WireError> {
    let query = LogQuery {
        after_seq: request.after_seq,
        since_ms: request.since_ms,
        tail: request.tail.map(|tail| tail as usize),
        max_lines: request.max_lines.min(MAX_LOG_LINES_PER_READ) as usize,
        max_bytes: MAX_LOG_READ_BYTES,
    };
    let page = service.transforms.logs(&request.name, &query).await?;
    Ok(TransformLogsResponse {
        lines: page.lines,
        more: page.more,
    })
}
