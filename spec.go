package billing

import _ "embed"

// OpenAPIYAML is openapi.yaml as shipped in the binary, served at
// /openapi.yaml; the generated server embeds the same document.
//
//go:embed openapi.yaml
var OpenAPIYAML []byte
