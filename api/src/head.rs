//! HEAD on every GET route (RFC 9110, 9.3.2): the request is routed as a GET and answered with
//! the same status and headers (`Content-Length`, `ETag`, ...), without the body. The body is
//! dropped unread: a HEAD on a download opens no object stream past its first poll, and a HEAD
//! on an event stream ends at once.

use std::pin::Pin;
use std::task::{Context, Poll};

use actix_web::Error;
use actix_web::body::{BodySize, EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::Method;
use actix_web::middleware::Next;
use actix_web::web::Bytes;

/// The size of the GET's body, and no bytes.
pub struct HeadBody(BodySize);

impl MessageBody for HeadBody {
    type Error = std::convert::Infallible;

    fn size(&self) -> BodySize {
        self.0
    }

    fn poll_next(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Bytes, Self::Error>>> {
        Poll::Ready(None)
    }
}

/// Routes HEAD as GET and strips the body of the answer.
pub async fn head_as_get<B: MessageBody + 'static>(
    mut req: ServiceRequest,
    next: Next<B>,
) -> Result<ServiceResponse<EitherBody<B, HeadBody>>, Error> {
    if req.method() != Method::HEAD {
        return Ok(next.call(req).await?.map_into_left_body());
    }
    req.head_mut().method = Method::GET;
    let response = next.call(req).await?;
    Ok(response.map_body(|_, body| EitherBody::right(HeadBody(body.size()))))
}
