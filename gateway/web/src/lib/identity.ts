// Who the browser is signed in as (GatewayService.WhoAmI), and what that role may do: actions the
// role cannot take are disabled with the reason, before anyone clicks.
import { Role } from "../gen/tapedeck/common/v1/common_pb";

export interface Identity {
  readonly name: string;
  readonly role: Role;
}

export function roleName(role: Role): string {
  return (Role[role] ?? "unspecified").toLowerCase();
}

let signedIn: Identity | null = null;

// Who the app is signed in as: set once WhoAmI has answered; null before, or when it could not say.
export function currentIdentity(): Identity | null {
  return signedIn;
}

export function setIdentity(identity: Identity | null): void {
  signedIn = identity;
}

// Why `identity` cannot take an action that needs `needed`; null when it can (or when who is
// signed in is not known: the service decides then).
export function refusal(identity: Identity | null, needed: Role, action: string): string | null {
  if (identity === null || identity.role >= needed) return null;
  return `${action} needs the ${roleName(needed)} role; ${identity.name} is a ${roleName(identity.role)}.`;
}

// Disables `control` (with the reason as its tooltip) when the signed-in role cannot take the
// action; true when it can.
export function gate(control: HTMLButtonElement, needed: Role, action: string): boolean {
  const reason = refusal(signedIn, needed, action);
  if (reason === null) return true;
  control.disabled = true;
  control.title = reason;
  control.dataset.refused = reason;
  return false;
}
