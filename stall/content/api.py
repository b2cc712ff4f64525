"""API v1: posts (CRUD and archive) and tips (read-only list). Each endpoint parses, calls one
service or selector, serializes; another store's post is "not found"."""

from ninja import Query, Router

from stall.core.api import ListParams, ObjectId, paginate, responses, router_refuse_other_methods

from . import selectors, services
from .schemas import PostCreateIn, PostList, PostOut, PostUpdateIn, TipList, post_out, tip_out

posts_router = Router()
tips_router = Router()


@posts_router.post("", response=responses(PostOut), summary="Create a post")
def post_create(request, payload: PostCreateIn):
    """A post is sold as a product of kind ``post``; 0 makes it free."""
    return post_out(services.post_create(store=request.store, **payload.model_dump()))


@posts_router.get("", response=responses(PostList), summary="List posts, newest first")
def post_list(request, params: Query[ListParams]):
    return paginate(selectors.posts_for_store(store=request.store), params, post_out)


@posts_router.get("/{id}", response=responses(PostOut), summary="Retrieve a post")
def post_retrieve(request, id: ObjectId):
    return post_out(selectors.post_get(store=request.store, post_id=id))


@posts_router.post("/{id}", response=responses(PostOut), summary="Update a post")
def post_update(request, id: ObjectId, payload: PostUpdateIn):
    """Changes only the parameters sent."""
    post = selectors.post_get(store=request.store, post_id=id)
    return post_out(services.post_update(post=post, **payload.model_dump(exclude_unset=True)))


@posts_router.post("/{id}/archive", response=responses(PostOut), summary="Archive a post")
def post_archive(request, id: ObjectId):
    """Off the store and the feed; readers who unlocked it keep it."""
    post = selectors.post_get(store=request.store, post_id=id)
    return post_out(services.post_archive(post=post))


router_refuse_other_methods(posts_router)


@tips_router.get("", response=responses(TipList), summary="List tips, newest first")
def tip_list(request, params: Query[ListParams]):
    """Every tip with what the tipper wrote, whether or not they made it public."""
    return paginate(selectors.tips_for_store(store=request.store), params, tip_out)


router_refuse_other_methods(tips_router)
