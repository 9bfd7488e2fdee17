"""Hub's SCIM connector: the directory Okta and Entra ID push, and the Hub access derived from it."""
