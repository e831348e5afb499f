/* PLACEHOLDER: replaced by the module's real implementation. */
#include "acl.h"
bool acl_allows(const struct acl *acl, const struct sockaddr *sa) { (void)acl; (void)sa; return false; }
