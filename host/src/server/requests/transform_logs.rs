//! `TransformLogs`: a transform's recent log lines.

use quiver_proto::WireError;
use quiver_proto::api::transforms::{TransformLogsRequest, TransformLogsResponse};
use quiver_proto::limits::MAX_LOG_LINES_PER_READ;

use crate::server::Context;

pub(super) async fn handle(
    context: &Context,
    request: TransformLogsRequest,
) -> Result<TransformLogsResponse, WireError> {
    let max = request.max_lines.min(MAX_LOG_LINES_PER_READ) as usize;
    Ok(TransformLogsResponse {
        lines: context
            .transforms
            .logs(&request.name, request.after_seq, max)
            .await?,
    })
}
