/* Licensed under the Apache License, Version 2.0 (see LICENSE). */

#include "mod_iss_liveprop.h"

#include <apr_strings.h>

dav_prop_insert iss_liveprop_insert(const dav_resource *resource,
                                    const dav_liveprop_group *group,
                                    int propid, dav_prop_insert what,
                                    const char *xml_value,
                                    apr_text_header *phdr)
{
    const dav_liveprop_spec *info;
    long ns = dav_get_liveprop_info(propid, group, &info);
    const char *s;

    if (what == DAV_PROP_INSERT_VALUE) {
        s = apr_psprintf(resource->pool, "<lp%ld:%s>%s</lp%ld:%s>" DEBUG_CR,
                         ns, info->name, xml_value, ns, info->name);
    }
    else if (what == DAV_PROP_INSERT_NAME) {
        s = apr_psprintf(resource->pool, "<lp%ld:%s/>" DEBUG_CR, ns,
                         info->name);
    }
    else {
        s = apr_psprintf(resource->pool, "<D:supported-live-property "
                         "D:name=\"%s\" D:namespace=\"%s\"/>" DEBUG_CR,
                         info->name,
                         apr_xml_quote_string(resource->pool,
                                              group->namespace_uris[info->ns],
                                              1));
    }
    apr_text_append(resource->pool, phdr, s);
    return what;
}

int iss_liveprop_protected(const dav_resource *resource, int propid)
{
    return 0;
}
