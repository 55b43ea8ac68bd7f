import { describe, expect, it } from "vitest";
import { Role } from "../gen/tapedeck/common/v1/common_pb";
import { refusal, roleName } from "./identity";

describe("identity", () => {
  it("names roles and says why a role cannot take an action", () => {
    expect(roleName(Role.OPERATOR)).toBe("operator");
    const viewer = { name: "desk-viewer", role: Role.VIEWER };
    expect(refusal(viewer, Role.OPERATOR, "Launching")).toBe(
      "Launching needs the operator role; desk-viewer is a viewer.",
    );
    expect(refusal({ name: "ops", role: Role.OPERATOR }, Role.OPERATOR, "Launching")).toBeNull();
    expect(refusal({ name: "root", role: Role.ADMIN }, Role.OPERATOR, "Launching")).toBeNull();
    expect(refusal(null, Role.ADMIN, "Deleting")).toBeNull();
  });
});
