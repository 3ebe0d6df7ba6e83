// The bot's command list, registered with setMyCommands by scripts/telegram-setup.ts.
export const COMMANDS = [
  { command: "task", description: "Plan and run a task" },
  { command: "status", description: "A job's progress" },
  { command: "jobs", description: "Your recent jobs" },
  { command: "logs", description: "The last lines of a job's log" },
  { command: "artifacts", description: "A job's files" },
  { command: "plan", description: "A job's steps and params in full" },
  { command: "approve", description: "Approve a job's plan" },
  { command: "deny", description: "Deny a job's plan" },
  { command: "cancel", description: "Cancel a job" },
  { command: "retry", description: "Run a job's task again" },
  { command: "agents", description: "Connected laptops" },
  { command: "pair", description: "Connect a new laptop" },
  { command: "web", description: "A one-time link to the web console" },
  { command: "help", description: "What I can do" },
];
