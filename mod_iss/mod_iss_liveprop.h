/* Licensed under the Apache License, Version 2.0 (see LICENSE). */

/**
 * mod_iss_liveprop — what mod_iss's live property providers share
 * (DAV:sync-token and DAV:supported-report-set in mod_iss_sync_prop,
 * DAV:getetag and I:repr-digest in mod_iss_etag): the XML text of a
 * property for each of mod_dav's insert modes, and "protected".
 */
#ifndef MOD_ISS_LIVEPROP_H
#define MOD_ISS_LIVEPROP_H

#include "mod_iss.h"

/** Append property @a propid of @a group for @a what to @a phdr and
 *  return @a what.  @a xml_value is the element's content for
 *  DAV_PROP_INSERT_VALUE, already XML (escape text with
 *  apr_xml_quote_string()); not used for the other modes. */
dav_prop_insert iss_liveprop_insert(const dav_resource *resource,
                                    const dav_liveprop_group *group,
                                    int propid, dav_prop_insert what,
                                    const char *xml_value,
                                    apr_text_header *phdr);

/** is_writable of a provider whose properties are all protected. */
int iss_liveprop_protected(const dav_resource *resource, int propid);

#endif /* MOD_ISS_LIVEPROP_H */
