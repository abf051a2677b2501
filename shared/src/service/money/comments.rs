//! Comments on approvals (docs/api.md, "Comments"): reviewers and the requesting key talk about
//! a held payment, pending or decided. A comment is created with its audit row and its
//! `approval.commented` event in one transaction; it never touches the approval itself, so it
//! never races a decision.

use serde_json::json;

use crate::domain::approval::Approval;
use crate::domain::audit::Actor;
use crate::domain::comment::{Comment, CommentAuthor};
use crate::domain::event::Event;
use crate::domain::ids::{ApprovalId, CommentId};
use crate::domain::org::ApiKey;
use crate::domain::permission::{self, Permission};
use crate::engine::plan::Tx;
use crate::error::{AppError, AppResult};
use crate::layout::{approval_key, comments_query};
use crate::service::paging::{Page, PageRequest, MAX_LIMIT};
use crate::service::{Caller, UseCases};

/// A comment to add, its body checked at the door (`domain::comment::comment_body`).
#[derive(Debug, Clone, PartialEq)]
pub struct NewComment {
    pub body: String,
}

/// Who may see an approval's comments (`ApprovalsRead`) or add one (`ApprovalsWrite`): a
/// reviewer, a key holding that permission whose wallets include the approval's; and the key
/// that requested it, whatever else it holds. Anyone else is told there is no such approval, as
/// another organisation is.
fn ensure_may_comment(key: &ApiKey, approval: &Approval, reviewer_needs: Permission) -> AppResult<()> {
    let requester = approval.created_by == key.id;
    let reviewer = permission::allows(&key.permissions, reviewer_needs) && key.may_use(&approval.wallet_id);
    if requester || reviewer {
        Ok(())
    } else {
        Err(AppError::NotFound("approval"))
    }
}

impl UseCases {
    /// `POST /v1/approvals/{id}/comments`.
    pub async fn add_comment(&self, caller: &Caller, id: &ApprovalId, request: NewComment) -> AppResult<Comment> {
        let key = caller.key()?;
        let r = self.reader();
        self.engine
            .commit(&r, || async {
                let approval = r.read_owned::<Approval>(&approval_key(id), &key.org_id).await?.value;
                ensure_may_comment(key, &approval, Permission::ApprovalsWrite)?;
                let mut tx = Tx::new(&key.org_id, Actor::Key(key.id.clone()), self.now());
                let comment = Comment {
                    id: CommentId::next_at(tx.now()),
                    approval_id: approval.id.clone(),
                    body: request.body.clone(),
                    author: CommentAuthor::of(key),
                    created_at: tx.now(),
                };
                tx.create(&comment)?;
                tx.event(Event::for_comment(&approval, &comment, tx.now()))?;
                tx.audit("approval.commented", "approval", approval.id.as_str(), json!({"commentId": comment.id}))?;
                Ok(tx.done(comment))
            })
            .await
    }

    /// `GET /v1/approvals/{id}/comments`: oldest first, a page at a time.
    pub async fn list_comments(
        &self,
        caller: &Caller,
        id: &ApprovalId,
        page: &PageRequest,
    ) -> AppResult<Page<Comment>> {
        let key = caller.key()?;
        let approval = self.reader().read_owned::<Approval>(&approval_key(id), &key.org_id).await?.value;
        ensure_may_comment(key, &approval, Permission::ApprovalsRead)?;
        self.page(comments_query(id, page.limit), page, |_: &Comment| true).await
    }

    /// The first comments of an approval already read through the caller's permissions (the
    /// dashboard's detail page), oldest first.
    pub(crate) async fn first_comments(&self, id: &ApprovalId) -> AppResult<Page<Comment>> {
        let page = PageRequest { limit: MAX_LIMIT, after: None };
        self.page(comments_query(id, page.limit), &page, |_: &Comment| true).await
    }
}
