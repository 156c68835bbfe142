//! `/api/users/{user_id}/streams`: REST leases for numeric users. Only the
//! start lives here (it reads a JSON body); list, heartbeat and end are the
//! generic handlers of [`super::streams`].

use actix_web::{web, HttpResponse};
use stream_limit_core::StreamLimiter;

use super::streams;
use crate::error::ApiError;
use crate::extract::{IdempotencyHeader, OptionalJson, PathUser, RawStart};

/// `POST /api/users/{user_id}/streams` with an optional body
/// `{"streamId"?, "deviceId"?, "contentId"?}`: `201` and a `Location` for a new
/// lease, `200` for a replay, `409` at the limit, `410` for a named stream that ended.
pub(crate) async fn start(
    limiter: web::Data<StreamLimiter>,
    user: PathUser,
    key: IdempotencyHeader,
    body: OptionalJson<RawStart>,
) -> Result<HttpResponse, ApiError> {
    let options = body.0.parse(key)?;
    streams::start(&limiter, &user, options).await
}
