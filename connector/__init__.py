"""Hub's SCIM connector: the directory Okta and Entra ID push, and the access derived from it."""
