// Renders conversations through an Ollama TEMPLATE with Go's own text/template, the way Ollama's server does,
// so tests can compare the result byte for byte with the model's Jinja chat template.
//
// stdin:  {"template": "...", "conversations": [[{"role": "user", "content": "..."}, ...], ...]}
// stdout: a JSON array with one rendered string per conversation.
//
// What it mirrors from Ollama (template/template.go): the template is parsed with missingkey=zero and a `json`
// function; before rendering, consecutive messages of the same role (tool messages excepted) are joined with a
// blank line and all system messages are also joined into .System; the data has System, Messages (pointers),
// Tools, Response (empty) and Think.
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"text/template"
)

type message struct {
	Role      string `json:"role"`
	Content   string `json:"content"`
	Thinking  string
	ToolCalls []any
	ToolName  string
	Images    []any
}

type request struct {
	Template      string       `json:"template"`
	Conversations [][]message `json:"conversations"`
}

func collate(messages []message) (string, []*message) {
	var system []string
	var collated []*message
	for i := range messages {
		if messages[i].Role == "system" {
			system = append(system, messages[i].Content)
		}
		if n := len(collated); n > 0 && collated[n-1].Role == messages[i].Role && messages[i].Role != "tool" {
			collated[n-1].Content += "\n\n" + messages[i].Content
		} else {
			copied := messages[i]
			collated = append(collated, &copied)
		}
	}
	return strings.Join(system, "\n\n"), collated
}

func main() {
	var req request
	if err := json.NewDecoder(os.Stdin).Decode(&req); err != nil {
		fmt.Fprintln(os.Stderr, "bad input:", err)
		os.Exit(2)
	}
	funcs := template.FuncMap{"json": func(v any) string { b, _ := json.Marshal(v); return string(b) }}
	tmpl, err := template.New("").Option("missingkey=zero").Funcs(funcs).Parse(req.Template)
	if err != nil {
		fmt.Fprintln(os.Stderr, "template does not parse:", err)
		os.Exit(1)
	}
	rendered := []string{}
	for _, conversation := range req.Conversations {
		system, messages := collate(conversation)
		var out strings.Builder
		err := tmpl.Execute(&out, map[string]any{
			"System": system, "Messages": messages, "Tools": nil, "Response": "", "Think": false, "IsThinkSet": false,
		})
		if err != nil {
			fmt.Fprintln(os.Stderr, "template does not execute:", err)
			os.Exit(1)
		}
		rendered = append(rendered, out.String())
	}
	if err := json.NewEncoder(os.Stdout).Encode(rendered); err != nil {
		os.Exit(1)
	}
}
