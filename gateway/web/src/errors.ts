import { Code, ConnectError } from "@connectrpc/connect";

// A gRPC failure as a person should read it where the action was.
export function describeError(error: unknown): string {
  if (error instanceof ConnectError) {
    switch (error.code) {
      case Code.Unauthenticated:
        return "Not signed in: open the link `tapedeck` printed (it carries your token).";
      case Code.PermissionDenied:
        return `Your role cannot do this: ${error.rawMessage}`;
      case Code.Unimplemented:
        return "Not available yet in this version of the service.";
      case Code.Unknown:
        // What fetch reports when the connection drops mid-stream or the gateway is unreachable.
        return /network|fetch|failed to/i.test(error.rawMessage)
          ? "Connection lost."
          : `Unknown: ${error.rawMessage}`;
      case Code.Unavailable:
        return `Service unavailable, retrying: ${error.rawMessage}`;
      default:
        return `${Code[error.code]}: ${error.rawMessage}`;
    }
  }
  return error instanceof Error ? error.message : String(error);
}
