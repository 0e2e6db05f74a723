// Signs one webhook body with the official svix library, so the end-to-end suite can check
// that usersync accepts what Svix really sends (test_svix_interop.py).
// stdin: {"secret": "whsec_...", "id": "msg_...", "timestamp": <unix seconds>, "payload": "<body>"}
// stdout: the svix-signature header value ("v1,<base64>").
import { Webhook } from "svix";

let input = "";
process.stdin.setEncoding("utf8");
for await (const chunk of process.stdin) input += chunk;
const { secret, id, timestamp, payload } = JSON.parse(input);
const signature = new Webhook(secret).sign(id, new Date(timestamp * 1000), payload);
process.stdout.write(signature + "\n");
