package tartvm_test

import (
	"reflect"
	"testing"

	"github.com/tartyci/tarty/scheduler"
	"github.com/tartyci/tarty/tartvm"
)

// TestBackendPort checks *tartvm.Backend against the scheduler's Backend
// port. The port's Capacity and VM are declared in package scheduler, which
// adapters must not import, so tartvm mirrors them (Capacity, BackendVM):
// until both sides name one shared type (in package tarty), the check is
// structural: same methods, same parameters, results with the same fields.
// Once they do, it is the compile-time one:
//
//	var _ scheduler.Backend = (*tartvm.Backend)(nil)
func TestBackendPort(t *testing.T) {
	port := reflect.TypeFor[scheduler.Backend]()
	impl := reflect.TypeFor[*tartvm.Backend]()
	if impl.Implements(port) {
		return
	}
	for i := range port.NumMethod() {
		want := port.Method(i)
		got, ok := impl.MethodByName(want.Name)
		if !ok {
			t.Errorf("*tartvm.Backend has no %s", want.Name)
			continue
		}
		gt := got.Type // includes the receiver
		if gt.NumIn()-1 != want.Type.NumIn() || gt.NumOut() != want.Type.NumOut() {
			t.Errorf("%s: %v, port wants %v", want.Name, gt, want.Type)
			continue
		}
		for j := range want.Type.NumIn() {
			if !sameShape(gt.In(j+1), want.Type.In(j)) {
				t.Errorf("%s parameter %d: %v, port wants %v", want.Name, j, gt.In(j+1), want.Type.In(j))
			}
		}
		for j := range want.Type.NumOut() {
			if !sameShape(gt.Out(j), want.Type.Out(j)) {
				t.Errorf("%s result %d: %v, port wants %v", want.Name, j, gt.Out(j), want.Type.Out(j))
			}
		}
	}
}

// sameShape reports whether a and b are the same type, or structs (slices,
// channels of them) with the same field names and types.
func sameShape(a, b reflect.Type) bool {
	if a == b {
		return true
	}
	if a.Kind() != b.Kind() {
		return false
	}
	switch a.Kind() {
	case reflect.Slice, reflect.Pointer, reflect.Chan:
		return (a.Kind() != reflect.Chan || a.ChanDir() == b.ChanDir()) && sameShape(a.Elem(), b.Elem())
	case reflect.Struct:
		if a.NumField() != b.NumField() {
			return false
		}
		for i := range a.NumField() {
			fa, fb := a.Field(i), b.Field(i)
			if fa.Name != fb.Name || !sameShape(fa.Type, fb.Type) {
				return false
			}
		}
		return true
	}
	return false
}
