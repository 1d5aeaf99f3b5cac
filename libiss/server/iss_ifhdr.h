/* Licensed under the Apache License, Version 2.0 (see LICENSE). */

/**
 * iss_ifhdr — sync tokens in the WebDAV If header.
 *
 * RFC 6578 section 5 lets a client use a sync token (a URI) as a state
 * token in the If header of RFC 4918 section 10.4.  mod_dav treats every
 * state token it does not know as "never matches" and offers no hook to
 * decide one, so the module rewrites the header before mod_dav reads it:
 * each Condition whose state token is one of ours becomes a constant
 * Condition with the same truth value, built on RFC 4918's DAV:no-lock
 * token, which never matches:
 *
 *   a Condition that is TRUE   becomes  Not <DAV:no-lock>
 *   a Condition that is FALSE  becomes  <DAV:no-lock>
 *
 * ("Not" included: for `Not <tok>` the truth is the negation of the
 * token's match.)  Entity tags get the same treatment when asked.
 * Every other byte of the header (foreign state tokens, entity tags left
 * alone, resource tags, lists, order, whitespace) is copied unchanged.
 *
 * The header is checked against RFC 4918 10.4.2 in full before any token
 * is evaluated:
 *
 *   If          = 1*No-tag-list | 1*Tagged-list    (the field value)
 *   No-tag-list = List
 *   Tagged-list = Resource-Tag 1*List
 *   List        = "(" 1*Condition ")"
 *   Condition   = ["Not"] (State-token | "[" entity-tag "]")
 *   State-token = "<" absolute-URI ">"
 *   Resource-Tag = "<" Simple-ref ">"
 *
 * with linear whitespace (SP, HT, CR, LF) allowed between any two of
 * these tokens, "Not" in any case, entity-tag = ["W/"] quoted-string
 * (RFC 7230 quoted-string: backslash escapes, HT, SP and bytes >= 0x80
 * allowed, other control characters not).  URIs may hold the characters
 * of RFC 3986 only (no space, '"', '<', '>', '\\', '^', '`', '{', '|',
 * '}', controls or bytes >= 0x80; percent-escapes are not checked); an
 * absolute-URI starts with a scheme and ':'; a Simple-ref is an
 * absolute-URI or a path starting with exactly one '/'.
 *
 * Work and memory are linear in the header length; parsing never
 * recurses.  The file knows nothing of httpd (APR only).
 */
#ifndef ISS_IFHDR_H
#define ISS_IFHDR_H

#include <apr_pools.h>
#include <apr_errno.h>

#ifdef __cplusplus
extern "C" {
#endif

/** The state token that replaces ours (it never matches). */
#define ISS_IFHDR_NO_LOCK "DAV:no-lock"

/** Decides one state token: return 1 if @a token is ours and currently
 *  matches the resource named by @a tag (NULL for an untagged list: the
 *  request-URI), 0 if ours and does not match, -1 if not ours.  (Any
 *  other positive value counts as 1, any other negative one as -1.)
 *  @a tag and @a token come without their angle brackets, NUL-terminated,
 *  allocated from the pool given to iss_ifhdr_rewrite().  Called once per
 *  state-token Condition, in header order, and only for a header that
 *  parsed completely. */
typedef int iss_ifhdr_eval_fn(void *baton, const char *tag, const char *token);

/** Rewrite If header @a in (the field value, without "If:").  *out = the
 *  new header (allocated from @a pool), or @a in itself if nothing was
 *  decided; *nours = number of conditions replaced.  @a fn decides state
 *  tokens; @a etag_fn decides `[entity-tag]` Conditions the same way (1
 *  matches, 0 does not, -1 leave it to mod_dav): it gets the entity tag
 *  as written, quotes and any "W/" included, without the brackets and
 *  the white space around them.  Either may be NULL (those Conditions
 *  stay).  mod_iss decides entity tags because mod_dav compares them
 *  with the provider's ETag, not with mod_iss's.
 *  APR_EINVAL if @a in is not a syntactically valid If header, or NULL
 *  (then *out = in, *nours = 0, nothing evaluated); never crashes on any
 *  input. */
apr_status_t iss_ifhdr_rewrite(const char *in, iss_ifhdr_eval_fn *fn,
                               iss_ifhdr_eval_fn *etag_fn, void *baton,
                               const char **out, int *nours,
                               apr_pool_t *pool);

#ifdef __cplusplus
}
#endif

#endif /* ISS_IFHDR_H */
